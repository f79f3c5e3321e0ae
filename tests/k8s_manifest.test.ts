/**
 * The Kubernetes manifests of docs/operations.md, checked as a cluster
 * would take them: parsed as YAML 1.1 (what kubectl reads), validated
 * against the Kubernetes schemas (kubernetes-models), with unknown fields
 * refused (as `kubectl apply`'s strict field validation does), and held to
 * what the command needs (ports, probes, the shard from the pod's ordinal).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { parseFlags } from "../src/cli/flags.ts";
import { healthSetting } from "../src/cli/settings.ts";
import { shardSetting } from "../src/cli/shard.ts";

const OPERATIONS = fileURLToPath(
  new URL("../docs/operations.md", import.meta.url),
);

type Json = Record<string, unknown>;

/** A model class: validates what it was made from, throwing its errors. */
type ModelClass = {
  new (data: never): { validate(): void };
  apiVersion: string;
  kind: string;
};

// The schemas' format checks load Node's deprecated `punycode` (a
// DeprecationWarning on every run): quiet while they load, and only then.
const quiet = process.noDeprecation;
process.noDeprecation = true;
const [{ Deployment }, { StatefulSet }, { Pod }] = await Promise.all([
  import("kubernetes-models/apps/v1/Deployment"),
  import("kubernetes-models/apps/v1/StatefulSet"),
  import("kubernetes-models/v1/Pod"),
]).finally(() => process.noDeprecation = quiet);

const KINDS: Record<string, ModelClass> = {
  Deployment: Deployment as unknown as ModelClass,
  StatefulSet: StatefulSet as unknown as ModelClass,
};

/** The ```yaml blocks of a markdown text, in order. */
function yamlBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

/** Every YAML document of a block, parsed as Kubernetes' YAML 1.1 parser would. */
function documents(block: string): { value?: Json; problems: string[] } {
  const docs = parseAllDocuments(block, { version: "1.1", uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const problems = list.flatMap((d) => d.errors.map((e) => e.message));
  if (list.length !== 1) problems.push(`${list.length} documents in a block`);
  const value = list[0]?.toJS() as Json | undefined;
  return { value, problems };
}

/** The schema's complaints: `path message` lines, none when valid. */
function schemaErrors(validate: () => void): { path: string; text: string }[] {
  try {
    validate();
    return [];
  } catch (error) {
    const errors = (error as { errors?: { instancePath: string }[] }).errors;
    if (!errors) throw error;
    return errors.map((e) => ({
      path: e.instancePath,
      text: `${e.instancePath || "/"} ${(e as { message?: string }).message}`,
    }));
  }
}

const pointer = (key: string) => key.replace(/~/g, "~0").replace(/\//g, "~1");
const UNKNOWN_PROBE = Symbol("no schema allows this");

/**
 * Fields the schema does not know. The schemas let unknown fields through,
 * as the API server did before strict field validation: each field in turn
 * is set to a value no type allows, and a field whose path then draws no
 * complaint is one the schema does not describe (a typo such as
 * `livenesProbe` would otherwise be dropped without a word).
 */
function unknownFields(root: Json, validate: (data: Json) => void): string[] {
  const unknown: string[] = [];
  const walk = (node: unknown, path: string) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${path}/${i}`));
      return;
    }
    if (node === null || typeof node !== "object") return;
    const object = node as Json;
    for (const key of Object.keys(object)) {
      const at = `${path}/${pointer(key)}`;
      const saved = object[key];
      object[key] = UNKNOWN_PROBE;
      const errors = schemaErrors(() => validate(root));
      object[key] = saved;
      const known = errors.some((e) =>
        e.path === at || e.path.startsWith(`${at}/`)
      );
      if (!known) unknown.push(at);
      else walk(saved, at);
    }
  };
  walk(root, "");
  return unknown;
}

/** A container fragment (no `kind`), as part of a minimal pod. */
function asPod(fragment: Json): Json {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "fragment" },
    spec: { containers: [{ name: "fragment", image: "x", ...fragment }] },
  };
}

/** What a cluster and the command would find wrong with the doc's manifests. */
function checkManifests(markdown: string): {
  problems: string[];
  kinds: string[];
} {
  const problems: string[] = [];
  const kinds: string[] = [];
  for (const [n, block] of yamlBlocks(markdown).entries()) {
    const where = `yaml block ${n + 1}`;
    const { value, problems: syntax } = documents(block);
    problems.push(...syntax.map((p) => `${where}: ${p}`));
    if (!value || typeof value !== "object") {
      problems.push(`${where}: not a mapping`);
      continue;
    }
    let manifest = value;
    let Model: ModelClass = Pod as unknown as ModelClass;
    if (value.kind === undefined && value.apiVersion === undefined) {
      manifest = asPod(value); // probes and such, for a container
    } else {
      const kind = String(value.kind);
      kinds.push(kind);
      if (!KINDS[kind]) {
        problems.push(`${where}: no check for kind ${kind}`);
        continue;
      }
      Model = KINDS[kind];
      if (value.apiVersion !== Model.apiVersion) {
        problems.push(
          `${where}: ${kind} is ${Model.apiVersion}, not ${value.apiVersion}`,
        );
      }
    }
    const validate = (data: Json) => new Model(data as never).validate();
    problems.push(
      ...schemaErrors(() => validate(manifest)).map((e) =>
        `${where}: ${e.text}`
      ),
      ...unknownFields(manifest, validate).map((p) =>
        `${where}: unknown field ${p}`
      ),
    );
    if (manifest.kind !== "Pod") {
      problems.push(
        ...workloadProblems(manifest).map((p) => `${where}: ${p}`),
      );
    }
  }
  return { problems, kinds };
}

/** A Deployment's or StatefulSet's fit with the command. */
function workloadProblems(workload: Json): string[] {
  const problems: string[] = [];
  const spec = (workload.spec ?? {}) as Json;
  const template = (spec.template ?? {}) as Json;
  const meta = (template.metadata ?? {}) as Json;
  const podSpec = (template.spec ?? {}) as Json;
  const labels = (meta.labels ?? {}) as Record<string, string>;
  const selector = ((spec.selector as Json | undefined)?.matchLabels ??
    {}) as Record<string, string>;
  // The API server refuses a selector that does not select the template.
  for (const [k, v] of Object.entries(selector)) {
    if (labels[k] !== v) problems.push(`selector ${k}=${v} misses the pods`);
  }
  const containers = (podSpec.containers ?? []) as Json[];
  const c = containers[0];
  if (!c) return [...problems, "no container"];
  const args = (c.args ?? []) as string[];
  const at = args.findIndex((a) => a.startsWith("jsr:@molecule/heartbeat"));
  if (at === -1) return [...problems, "no jsr:@molecule/heartbeat in args"];
  const env = new Map<string, Json>(
    ((c.env ?? []) as Json[]).map((e) => [String(e.name), e]),
  );
  const value = (name: string) => env.get(name)?.value as string | undefined;
  // The command's own reading of its flags and plain variables.
  const flags = parseFlags(args.slice(at + 1));
  const health = healthSetting(flags, value);
  if (!health) return [...problems, "no health port"];
  if (health.host !== "0.0.0.0") {
    problems.push(`the kubelet cannot probe ${health.host}`);
  }
  const ports = (c.ports ?? []) as Json[];
  const named = ports.find((p) => p.containerPort === health.port);
  if (!named) problems.push(`no containerPort ${health.port}`);
  for (const probe of ["livenessProbe", "readinessProbe"]) {
    const get = ((c[probe] as Json | undefined)?.httpGet ?? {}) as Json;
    const path = probe === "livenessProbe" ? "/healthz" : "/readyz";
    if (get.path !== path) problems.push(`${probe} is not ${path}`);
    if (get.port !== named?.name && get.port !== health.port) {
      problems.push(`${probe} probes port ${get.port}`);
    }
  }
  const annotations = (meta.annotations ?? {}) as Record<string, string>;
  if (annotations["prometheus.io/scrape"] !== "true") {
    problems.push("not scraped (prometheus.io/scrape)");
  }
  if (annotations["prometheus.io/port"] !== String(health.port)) {
    problems.push(
      `scraped on ${
        annotations["prometheus.io/port"]
      }, served on ${health.port}`,
    );
  }
  if (workload.kind === "StatefulSet") {
    const fieldPath =
      ((env.get("MOLECULE_SHARD")?.valueFrom as Json | undefined)
        ?.fieldRef as Json | undefined)?.fieldPath;
    if (fieldPath !== "metadata.labels['apps.kubernetes.io/pod-index']") {
      problems.push(`MOLECULE_SHARD comes from ${fieldPath}`);
    }
    const replicas = spec.replicas as number;
    if (value("MOLECULE_TOTAL_SHARDS") !== String(replicas)) {
      problems.push(
        `MOLECULE_TOTAL_SHARDS is ${
          value("MOLECULE_TOTAL_SHARDS")
        }, replicas ${replicas}`,
      );
    }
    if (spec.podManagementPolicy !== "Parallel") {
      problems.push("shards start one after another (podManagementPolicy)");
    }
    // Every pod, its ordinal in MOLECULE_SHARD, is a shard the command takes.
    for (let ordinal = 0; ordinal < replicas; ordinal++) {
      const podEnv = (name: string) =>
        name === "MOLECULE_SHARD" ? String(ordinal) : value(name);
      try {
        const shard = shardSetting(flags, podEnv);
        if (shard?.index !== ordinal || shard.total !== replicas) {
          problems.push(`pod ${ordinal} is shard ${JSON.stringify(shard)}`);
        }
      } catch (error) {
        problems.push(`pod ${ordinal}: ${(error as Error).message}`);
      }
    }
    // The list the shards split is a file the pods can read.
    const file = value("MOLECULE_WORKSPACES_FILE");
    const mounts = (c.volumeMounts ?? []) as Json[];
    if (
      !file ||
      !mounts.some((m) => file.startsWith(`${String(m.mountPath)}/`))
    ) {
      problems.push(`MOLECULE_WORKSPACES_FILE ${file} is on no volume`);
    }
  }
  return problems;
}

const markdown = readFileSync(OPERATIONS, "utf8");

test("docs/operations.md: its Deployment, StatefulSet and probe snippet are valid Kubernetes, with no unknown field, and fit the command", () => {
  const { problems, kinds } = checkManifests(markdown);
  assert.deepEqual(problems, []);
  assert.deepEqual(kinds.sort(), ["Deployment", "StatefulSet"]);
});

/** The doc with one change inside the block that holds `marker`. */
function broken(marker: string, from: string | RegExp, to: string): string {
  const block = yamlBlocks(markdown).find((b) => b.includes(marker));
  assert.ok(block, `no yaml block holds ${marker}`);
  const changed = block.replace(from, to);
  assert.notEqual(changed, block, `${from} is not in the block`);
  return markdown.replace(block, changed);
}

test("the manifest check fails when the doc's StatefulSet breaks: a misspelt field, a wrong type, a missing field, shards that disagree", () => {
  const cases: [string, RegExp][] = [
    [
      broken("kind: StatefulSet", "livenessProbe:", "livenesProbe:"),
      /unknown field \/spec\/template\/spec\/containers\/0\/livenesProbe/,
    ],
    [
      broken("kind: StatefulSet", "podManagementPolicy", "podManagmentPolicy"),
      /unknown field \/spec\/podManagmentPolicy/,
    ],
    [
      broken("kind: StatefulSet", /replicas: 3\b/, "replicas: three"),
      /\/spec\/replicas must be integer/,
    ],
    [
      broken("kind: StatefulSet", /^ {2}selector:\n.*\n/m, ""),
      /spec must have required property '?selector/,
    ],
    [
      broken("kind: StatefulSet", 'value: "3"', 'value: "4"'),
      /MOLECULE_TOTAL_SHARDS is 4, replicas 3/,
    ],
    [
      broken("kind: StatefulSet", "apps.kubernetes.io/pod-index", "pod-index"),
      /MOLECULE_SHARD comes from/,
    ],
    [
      broken("kind: StatefulSet", "containerPort: 8081", "containerPort: 8082"),
      /no containerPort 8081/,
    ],
    [
      broken("kind: StatefulSet", "apiVersion: apps/v1", "apiVersion: v1"),
      /StatefulSet is apps\/v1, not v1/,
    ],
    [
      broken("kind: Deployment", "failureThreshold: 3", "failureThreshold: x"),
      /livenessProbe\/failureThreshold must be integer/,
    ],
    [
      broken(
        "livenessProbe: # restart",
        "periodSeconds: 10",
        "periodSecond: 10",
      ),
      /unknown field .*livenessProbe\/periodSecond/,
    ],
  ];
  for (const [text, expected] of cases) {
    const { problems } = checkManifests(text);
    assert.ok(
      problems.some((p) => expected.test(p)),
      `${expected} not among: ${problems.join("; ")}`,
    );
  }
});
