// The npm package as a consumer gets it: `npm pack` ships the engine's modules (every module
// web_demo/index.js imports, transitively) and its declarations and nothing else (no tests,
// Python, demo page); the tarball installs offline into an empty folder and imports in node;
// esbuild (from npm) bundles a page importing it; tsc type-checks a TypeScript consumer
// (tests/ts/consumer.ts) against the declarations.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, normalize, relative, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const npm = (args, cwd) => execFileSync("npm", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

let work;
let packed;
before(() => {
  work = mkdtempSync(join(tmpdir(), "p2p-pkg-"));
  packed = JSON.parse(npm(["pack", "--json", "--pack-destination", work, "--loglevel=error"], ROOT))[0];
});
after(() => rmSync(work, { recursive: true, force: true }));

/** Every relative module `entry` imports, transitively (paths relative to ROOT). */
function importClosure(entry) {
  const seen = new Set();
  const stack = [entry];
  while (stack.length) {
    const file = stack.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(join(ROOT, file), "utf8");
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"(\.[^"]+)"/gms)) {
      stack.push(normalize(join(dirname(file), m[1])));
    }
  }
  return seen;
}

test("package.json: a name, a version, ESM exports with types, hls.js an optional peer", () => {
  assert.equal(pkg.name, "p2p-hls-engine");
  assert.match(pkg.version, /^\d+\.\d+\.\d+$/);
  assert.equal(pkg.private, undefined);
  assert.equal(pkg.type, "module");
  assert.deepEqual(Object.keys(pkg.exports["."]), ["types", "import", "default"]);
  assert.equal(pkg.peerDependenciesMeta["hls.js"].optional, true);
  assert.equal(pkg.dependencies, undefined, "the engine has no runtime dependencies");
  assert.match(readFileSync(join(ROOT, "CHANGELOG.md"), "utf8"), new RegExp(`## ${pkg.version.replaceAll(".", "\\.")}`));
});

test("npm pack ships exactly the engine's modules, its declarations and the docs", () => {
  const files = new Set(packed.files.map((f) => f.path));
  const closure = importClosure(pkg.exports["."].import.replace(/^\.\//, ""));
  for (const file of closure) assert.ok(files.has(file), `${file} is imported by the engine but not packed`);
  const expected = new Set([...closure, "web_demo/index.d.ts", "package.json", "README.md", "LICENSE", "CHANGELOG.md"]);
  const extra = [...files].filter((f) => !expected.has(f));
  assert.deepEqual(extra, [], "packed files the engine does not import");
});

test("the tarball installs offline into an empty folder; node imports it and esbuild bundles a page using it", async () => {
  const app = join(work, "app");
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "page", private: true, type: "module" }));
  npm(["install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", join(work, packed.filename)], app);
  writeFileSync(
    join(app, "page.js"),
    'import { P2PEngine, ENGINE_EVENTS } from "p2p-hls-engine";\n' +
      "export const engine = new P2PEngine({ p2p: false });\n" +
      "export const events = ENGINE_EVENTS;\nexport const supported = P2PEngine.isSupported();\n",
  );
  const direct = await import(pathToFileURL(join(app, "page.js")).href);
  assert.equal(direct.engine.p2pEnabled, false);
  assert.ok(direct.events.includes("segment-loaded"));
  assert.equal(direct.supported, false); // node: no RTCPeerConnection, no MediaSource
  direct.engine.destroy();

  const esbuild = await import(pathToFileURL(join(ROOT, "node_modules/esbuild/lib/main.js")).href);
  const out = join(app, "bundle.mjs");
  const result = await esbuild.build({ entryPoints: [join(app, "page.js")], bundle: true, format: "esm", platform: "browser", outfile: out, logLevel: "silent", metafile: true, absWorkingDir: app });
  assert.deepEqual(result.errors, []);
  // metafile paths are relative to absWorkingDir (the page folder, not the test runner's cwd)
  const inputs = Object.keys(result.metafile.inputs).map((p) => relative(app, resolve(app, p)));
  assert.ok(inputs.some((p) => p.startsWith("node_modules/p2p-hls-engine/web_demo/engine.js")), inputs.join(", "));
  const bundled = await import(pathToFileURL(out).href);
  assert.equal(bundled.engine.constructor.name, "P2PEngine");
  assert.ok(bundled.events.includes("error"));
  bundled.engine.destroy();
});

test("tsc --noEmit type-checks a TypeScript consumer against the declarations", () => {
  const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
  try {
    execFileSync(process.execPath, [tsc, "-p", join(ROOT, "tests/ts/tsconfig.json")], { encoding: "utf8", stdio: "pipe" });
  } catch (exc) {
    assert.fail(`tsc failed:\n${exc.stdout}${exc.stderr}`);
  }
});

test("the declarations name every option, event and stat the engine has; docs/api.md is up to date", async () => {
  const ts = (await import("typescript")).default;
  const sf = ts.createSourceFile("index.d.ts", readFileSync(join(ROOT, "web_demo/index.d.ts"), "utf8"), ts.ScriptTarget.Latest, true);
  const fields = (name) => {
    const decl = sf.statements.find((s) => ts.isInterfaceDeclaration(s) && s.name.text === name);
    return decl.members.map((m) => m.name.getText(sf).replace(/^"|"$/g, "")).sort();
  };
  const { DEFAULT_ENGINE_OPTIONS, P2PEngine } = await import("../../web_demo/engine.js");
  const { ENGINE_EVENTS } = await import("../../web_demo/events.js");
  assert.deepEqual(fields("P2PEngineOptions"), Object.keys(DEFAULT_ENGINE_OPTIONS).sort());
  assert.deepEqual(fields("P2PEngineEvents"), [...ENGINE_EVENTS].sort());
  const engine = new P2PEngine({ p2p: false });
  assert.deepEqual(fields("P2PEngineStats"), Object.keys(engine.stats()).sort());
  engine.destroy();
  try {
    execFileSync(process.execPath, [join(ROOT, "tools/apidoc.mjs"), "--check"], { encoding: "utf8", stdio: "pipe" });
  } catch (exc) {
    assert.fail(exc.stderr);
  }
});
