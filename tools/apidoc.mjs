// docs/api.md from web_demo/index.d.ts (the package's declarations), with the TypeScript
// compiler's parser: every exported interface, type, class, function and constant with its doc
// comment, and each member's type and comment. `node tools/apidoc.mjs` writes the file;
// `node tools/apidoc.mjs --check` exits 1 when docs/api.md is out of date (tests/js runs it).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import ts from "typescript";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SOURCE = join(ROOT, "web_demo/index.d.ts");
const TARGET = join(ROOT, "docs/api.md");

function docOf(node) {
  const parts = (node.jsDoc || []).map((d) => {
    const text = typeof d.comment === "string" ? d.comment : (d.comment || []).map((c) => c.text).join("");
    const tags = (d.tags || []).map((t) => `**@${t.tagName.text}** ${typeof t.comment === "string" ? t.comment : ""}`.trim());
    return [text, ...tags].filter(Boolean).join(" ");
  });
  return parts.join(" ").replace(/\s+/g, " ").trim();
}

const cell = (text) => text.replace(/\|/g, "\\|").replace(/\s+/g, " ").trim();
const code = (text) => "`" + cell(text).replace(/`/g, "'") + "`";

export function render(sourceText) {
  const sf = ts.createSourceFile("index.d.ts", sourceText, ts.ScriptTarget.Latest, true);
  const printer = ts.createPrinter({ removeComments: true });
  const print = (node) => printer.printNode(ts.EmitHint.Unspecified, node, sf).replace(/;$/, "");
  const out = [
    "# p2p-hls-engine API",
    "",
    "Generated from `web_demo/index.d.ts` by `node tools/apidoc.mjs` (`make api-docs`); do not edit.",
    "Usage, server settings and tokens: README.md, \"Embedding in a player page\".",
    "",
  ];
  const sections = { classes: [], interfaces: [], types: [], functions: [], constants: [] };
  for (const st of sf.statements) {
    const name = st.name?.text || st.declarationList?.declarations[0]?.name.text;
    const doc = docOf(st);
    if (ts.isClassDeclaration(st)) {
      const lines = [`### class ${name}`, "", doc, "", "| member | signature | description |", "| --- | --- | --- |"];
      for (const m of st.members) {
        const mname = m.name ? m.name.getText(sf) : "constructor";
        const isStatic = m.modifiers?.some((x) => x.kind === ts.SyntaxKind.StaticKeyword);
        lines.push(`| ${isStatic ? "static " : ""}${code(mname)} | ${code(print(m))} | ${cell(docOf(m))} |`);
      }
      sections.classes.push(lines.join("\n"));
    } else if (ts.isInterfaceDeclaration(st)) {
      const lines = [`### ${name}`, "", doc, "", "| field | type | description |", "| --- | --- | --- |"];
      for (const m of st.members) {
        const optional = m.questionToken ? "?" : "";
        const type = m.type ? print(m.type) : print(m);
        lines.push(`| ${code(m.name.getText(sf) + optional)} | ${code(type)} | ${cell(docOf(m))} |`);
      }
      sections.interfaces.push(lines.join("\n"));
    } else if (ts.isTypeAliasDeclaration(st)) {
      sections.types.push(`### ${name}\n\n${code(print(st.type))}\n\n${doc}`);
    } else if (ts.isFunctionDeclaration(st)) {
      sections.functions.push(`### ${name}()\n\n${code(print(st).replace(/^export declare |^export /, ""))}\n\n${doc}`);
    } else if (ts.isVariableStatement(st)) {
      const d = st.declarationList.declarations[0];
      sections.constants.push(`### ${name}\n\n${code(print(d.type))}\n\n${doc}`);
    }
  }
  const titles = { classes: "Classes", interfaces: "Options, stats and events", types: "Types", functions: "Functions", constants: "Constants" };
  for (const [key, title] of Object.entries(titles)) {
    if (!sections[key].length) continue;
    out.push(`## ${title}`, "", sections[key].join("\n\n"), "");
  }
  return out.join("\n").replace(/\n{3,}/g, "\n\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = render(readFileSync(SOURCE, "utf8"));
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(TARGET, "utf8");
    } catch {
      // missing: out of date
    }
    if (current !== text) {
      console.error("docs/api.md is out of date: run `make api-docs` (node tools/apidoc.mjs)");
      process.exit(1);
    }
  } else {
    writeFileSync(TARGET, text);
    console.log(`wrote ${TARGET}`);
  }
}
