// Copies the vendored browser libraries into ../static/vendor/ as gzip files.
//
//   npm ci && npm run build
//
// Only the .gz files are kept (the server sends them with
// Content-Encoding: gzip), plus each library's licence text. The gzip
// header carries no file name and no mtime, so rebuilding from the same
// package-lock.json gives the same bytes.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { constants, gunzipSync, gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const out = join(here, "..", "static", "vendor");

const scripts = [
  ["htmx.org/dist/htmx.min.js", "htmx.min.js"],
  ["mermaid/dist/mermaid.min.js", "mermaid.min.js"],
];
const licences = [
  ["htmx.org/LICENSE", "LICENSE-htmx.txt"],
  ["mermaid/LICENSE", "LICENSE-mermaid.txt"],
];

const version = (pkg) =>
  JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8")).version;

// Start from an empty folder so that nothing stale (an old .js) is left.
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

for (const [src, name] of scripts) {
  const raw = readFileSync(join(modules, src));
  const gz = gzipSync(raw, { level: constants.Z_BEST_COMPRESSION });
  // Header bytes 4-7 are the mtime (0 from zlib) and byte 9 the OS;
  // pin the OS to Unix (3) so the header is the same on every platform.
  gz[9] = 3;
  if (!gunzipSync(gz).equals(raw)) throw new Error(`gzip round trip failed for ${name}`);
  writeFileSync(join(out, `${name}.gz`), gz);
  const sha = createHash("sha256").update(raw).digest("hex").slice(0, 16);
  console.log(`${name}.gz  ${raw.length} -> ${gz.length} bytes  (${src.split("/")[0]}@${version(src.split("/")[0])}, sha256 ${sha}…)`);
}

for (const [src, name] of licences) {
  writeFileSync(join(out, name), readFileSync(join(modules, src)));
  console.log(name);
}

console.log(`wrote ${readdirSync(out).sort().join(", ")} to ${out}`);
