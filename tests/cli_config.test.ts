import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, envFromRecord } from "../mod.ts";
import { parseFlags } from "../src/cli/flags.ts";
import { platformUrlSetting } from "../src/cli/settings.ts";

test("plain http off loopback is accepted with a warning; loopback and https are quiet", () => {
  const flags = parseFlags([]);
  const warn = (url: string) => {
    const warnings: string[] = [];
    const base = platformUrlSetting(
      flags,
      envFromRecord({ PLATFORM_URL: url }),
      warnings,
    );
    return { base, warnings };
  };
  const plain = warn("http://molecule.example.com/");
  assert.equal(plain.base, "http://molecule.example.com");
  assert.match(
    plain.warnings[0],
    /PLATFORM_URL uses plain http:\/\/ to molecule\.example\.com: the workspace token travels in clear/,
  );
  for (
    const quiet of [
      "https://molecule.example.com",
      "http://127.0.0.1:8080",
      "http://localhost:1",
      "http://[::1]:9",
    ]
  ) {
    assert.deepEqual(warn(quiet).warnings, [], quiet);
  }
  assert.equal(
    warn("https://m.example/tenant/a//").base,
    "https://m.example/tenant/a",
  );
});

test("a platform URL with credentials, a query or a fragment is a configuration error", () => {
  const flags = parseFlags([]);
  for (
    const url of [
      "https://user:pw@m.example",
      "https://m.example/?x=1",
      "https://m.example/#top",
    ]
  ) {
    assert.throws(
      () => platformUrlSetting(flags, envFromRecord({ PLATFORM_URL: url }), []),
      (e: unknown) => e instanceof ConfigError && e.setting === "PLATFORM_URL",
      url,
    );
  }
});
