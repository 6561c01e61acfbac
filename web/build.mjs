// Builds the dashboard into dist/ (committed, embedded by src/server/ui.rs):
// dist/app.js (the UI, the TypeScript client from ../clients/typescript
// and its Connect/protobuf runtime, in one file), dist/app.css and
// dist/index.html. `--check` builds in memory and fails when the committed
// dist/ differs, which is how scripts/test.sh catches a stale bundle.
import { build } from "esbuild";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const client = join(here, "..", "clients", "typescript");
const check = process.argv.includes("--check");

const common = {
  bundle: true,
  minify: true,
  write: false,
  legalComments: "none",
  logLevel: "warning",
  target: ["es2022", "chrome110", "firefox110", "safari16"],
  // The client's own dependencies (Connect, protobuf-es) resolve from its
  // node_modules, installed by its `npm ci`; the UI adds no runtime package.
  nodePaths: [join(client, "node_modules")],
  alias: { "@verdict/client": join(client, "src", "index.ts") },
  // tsconfig.json's `paths` are for tsc's type checking only: followed by
  // esbuild they would resolve packages by their CommonJS `main` and bundle
  // protobuf-es and Connect twice (ESM for the client, CJS for the UI).
  tsconfigRaw: { compilerOptions: {} },
  platform: "browser",
};
const js = await build({ ...common, entryPoints: [join(here, "src", "main.ts")], format: "esm", outfile: "dist/app.js" });
const css = await build({ ...common, entryPoints: [join(here, "src", "app.css")], outfile: "dist/app.css" });
const files = {
  "app.js": js.outputFiles[0].contents,
  "app.css": css.outputFiles[0].contents,
  "index.html": readFileSync(join(here, "src", "index.html")),
};

let stale = [];
for (const [name, contents] of Object.entries(files)) {
  const path = join(here, "dist", name);
  let committed;
  try {
    committed = readFileSync(path);
  } catch {
    committed = undefined;
  }
  const same = committed !== undefined && Buffer.compare(committed, Buffer.from(contents)) === 0;
  if (!same) {
    stale.push(name);
    if (!check) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, contents);
    }
  }
}
if (check && stale.length > 0) {
  console.error(`the committed dashboard bundle is stale (web/dist/${stale.join(", web/dist/")}): run \`npm run build\` in web/ and commit web/dist`);
  process.exit(1);
}
console.log(check ? "web/dist is up to date" : stale.length ? `built web/dist/${stale.join(", web/dist/")}` : "web/dist unchanged");
