import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runScript } from "./helpers/runtime.ts";

test("the library prints nothing unless the application configures logging", async () => {
  const script = fileURLToPath(
    new URL("./fixtures/quiet_library.ts", import.meta.url),
  );
  const result = await runScript(script);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "");
  assert.equal(result.stderr, "");
});
