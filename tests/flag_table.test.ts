// Issue 26, "one flag table": every flag and variable is written once, in
// FLAGS (src/cli/flags.ts), and the parser, the reading of each setting,
// --help and docs/cli.md all follow it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { envFromRecord } from "../src/shared/env.ts";
import { ConfigError } from "../src/shared/errors.ts";
import {
  type Entry,
  FLAGS,
  parseFlags,
  read,
  type SettingName,
} from "../src/cli/flags.ts";
import { helpText } from "../src/cli/help.ts";

const entries = Object.entries(FLAGS) as [SettingName, Entry][];
const flagName = (entry: Entry) => entry.flag?.split(" ")[0];
const variables = (entry: Entry) => [entry.env ?? []].flat();

test("docs/cli.md documents every flag and variable of the table, and no flag the table lacks", async () => {
  const doc = await readFile(
    new URL("../docs/cli.md", import.meta.url),
    "utf8",
  );
  const missing: string[] = [];
  for (const [, entry] of entries) {
    const names = [
      ...(entry.flag ? [`\`${flagName(entry)}`] : []),
      ...(entry.short ? [`\`-${entry.short}\``] : []),
      ...variables(entry).map((name) => `\`${name}\``),
    ];
    missing.push(...names.filter((name) => !doc.includes(name)));
  }
  assert.deepEqual(missing, [], "in the table, not in docs/cli.md");
  const known = new Set(entries.map(([, entry]) => flagName(entry)));
  const documented = [...doc.matchAll(/^\| `(--[a-z-]+)/gm)].map((m) => m[1]);
  assert.ok(documented.length >= 20, `${documented.length} flags documented`);
  assert.deepEqual(
    documented.filter((flag) => !known.has(flag)),
    [],
    "in docs/cli.md's table, not in the command's",
  );
});

test("--help lists every flag with its value's name, every short flag and every variable", () => {
  const help = helpText();
  for (const [key, entry] of entries) {
    for (
      const word of [
        entry.flag,
        entry.short && `${entry.flag}, -${entry.short}`,
        ...variables(entry),
      ]
    ) if (word) assert.ok(help.includes(word), `${key}: --help lacks ${word}`);
  }
  assert.ok(help.split("\n").every((line) => line.length <= 80));
});

test("the parser takes every flag of the table (a value where the table names one) and no other", () => {
  for (const [key, entry] of entries) {
    if (!entry.flag) continue;
    const takesValue = entry.flag.includes(" ");
    const flags = parseFlags(
      takesValue ? [flagName(entry)!, "x"] : [flagName(entry)!],
    ) as Record<string, unknown>;
    assert.equal(flags[key], takesValue ? "x" : true, key);
    if (entry.short) {
      assert.equal(
        (parseFlags([`-${entry.short}`]) as Record<string, unknown>)[key],
        true,
      );
    }
  }
  assert.throws(() => parseFlags(["--intervals", "5"]), /Unknown option/);
});

test("every setting with a rule: a bad value is an error naming the flag or the variable it came from; a flag beats its variables; blank is unset", () => {
  const bad = "\u0001 bad";
  const refusal = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error;
    }
    assert.fail("no ConfigError");
  };
  const checked = entries.filter(([, entry]) => entry.rule !== undefined);
  assert.ok(checked.length >= 12, `${checked.length} settings with a rule`);
  for (const [key, entry] of checked) {
    const vars = variables(entry);
    const sources: [string[], Record<string, string>, string][] = [
      ...vars.map((name): [string[], Record<string, string>, string] => [
        [],
        { [name]: bad },
        name,
      ]),
    ];
    if (entry.flag?.includes(" ")) {
      // Given with every variable set too: the flag is the one to fix.
      const all = Object.fromEntries(vars.map((name) => [name, bad]));
      sources.push([[flagName(entry)!, bad], all, flagName(entry)!]);
    }
    assert.ok(sources.length > 0, key);
    for (const [args, env, where] of sources) {
      const error = refusal(() =>
        read(parseFlags(args), envFromRecord(env), key)
      );
      assert.equal(error.setting, where, key);
      assert.ok(
        error.message.startsWith(`${where} must be ${entry.rule}`),
        error.message,
      );
      // A secret's value is never quoted; any other is, escaped.
      assert.equal(error.message.includes("\\u0001 bad"), !entry.secret, key);
    }
    for (const name of vars) {
      assert.equal(
        read(parseFlags([]), envFromRecord({ [name]: " \t" }), key),
        undefined,
      );
    }
  }
});

test("unset, every setting reads as undefined: the CLI applies no default of the library's", () => {
  for (const [key] of entries) {
    assert.equal(read(parseFlags([]), envFromRecord({}), key), undefined, key);
  }
  // And a variable is read as the table says: the interval in ms.
  assert.equal(
    read(
      parseFlags([]),
      envFromRecord({ MOLECULE_HEARTBEAT_INTERVAL: "0.5" }),
      "interval",
    ),
    500,
  );
});
