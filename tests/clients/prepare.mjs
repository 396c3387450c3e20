// Writes the README's HTTP-client recipes (the blocks after a
// `<!-- tested: tests/e2e/clients.test.mjs as NAME -->` line) into src/NAME
// as they are, and src/schema.d.ts: openapi-typescript's types of the dev
// server's OpenAPI document, as an app generates them for openapi-fetch.
// Run by `make types` (before tsc) and by tests/e2e/clients.test.mjs.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import openapiTS, { astToString } from "openapi-typescript";

const here = new URL(".", import.meta.url).pathname;
const root = join(here, "../..");
export const src = join(here, "src");

/** The recipes, `{ name, code }`, in README order. */
export const recipes = [...readFileSync(join(root, "README.md"), "utf8")
  .matchAll(/<!-- tested: tests\/e2e\/clients\.test\.mjs as ([\w.]+) -->\n```ts\n([\s\S]*?)\n```/g)]
  .map(([, name, code]) => ({ name, code }));

export async function prepare() {
  mkdirSync(src, { recursive: true });
  for (const { name, code } of recipes) writeFileSync(join(src, name), code + "\n");
  const schema = JSON.parse(readFileSync(join(root, "devserver/openapi.json"), "utf8"));
  writeFileSync(join(src, "schema.d.ts"), astToString(await openapiTS(schema)));
  return recipes;
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const written = await prepare();
  console.log(`tests/clients/src: ${written.map((r) => r.name).join(", ")}, schema.d.ts`);
}
