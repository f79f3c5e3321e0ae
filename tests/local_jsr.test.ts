// The release check's JSR registry (scripts/local_jsr.ts): what a real
// `deno publish` and Deno's loader rely on, and what it must refuse. Deno
// only: the registry is a Deno script.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startLocalJsr, untar } from "../scripts/local_jsr.ts";
import { concatBytes } from "../src/shared/_bytes.ts";

const onDeno = "Deno" in globalThis;

/** A ustar archive of `files` (path → text), as `deno publish` sends. */
function tar(files: Record<string, string>): Uint8Array {
  const enc = new TextEncoder();
  const blocks: Uint8Array[] = [];
  for (const [name, text] of Object.entries(files)) {
    const body = enc.encode(text);
    const header = new Uint8Array(512);
    header.set(enc.encode(name), 0);
    header.set(enc.encode("0000644\0"), 100);
    header.set(
      enc.encode(body.length.toString(8).padStart(11, "0") + "\0"),
      124,
    );
    header[156] = "0".charCodeAt(0);
    header.set(enc.encode("ustar\0" + "00"), 257);
    header.fill(32, 148, 156); // checksum field as spaces while summing
    const sum = header.reduce((a, b) => a + b, 0);
    header.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
    blocks.push(header, body, new Uint8Array((512 - body.length % 512) % 512));
  }
  blocks.push(new Uint8Array(1024));
  return concatBytes(blocks);
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

test("untar reads the files and refuses a path that climbs out", () => {
  const files = untar(tar({ "mod.ts": "export {};\n", "src/a.ts": "a" }));
  assert.deepEqual(files.map((f) => f.path), ["/mod.ts", "/src/a.ts"]);
  assert.throws(() => untar(tar({ "../evil.ts": "x" })), /unsafe path/);
});

test("publish, then meta files with each file's sha256, and refusals", {
  skip: !onDeno,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "molecule-local-jsr-" });
  const jsr = await startLocalJsr({ dir, token: "right" });
  try {
    const api = `${jsr.url}api/scopes/acme/packages/tool/versions/1.2.3`;
    const config = JSON.stringify({
      name: "@acme/tool",
      version: "1.2.3",
      exports: "./mod.ts",
    });
    const body = await gzip(
      tar({ "deno.json": config, "mod.ts": "export const x = 1;\n" }),
    );
    const post = (token: string, bytes = body) =>
      fetch(`${api}?config=%2Fdeno.json`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-encoding": "gzip",
        },
        body: bytes as BodyInit,
      });
    const wrong = await post("wrong");
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    assert.equal((await fetch(api)).status, 404, "not published yet");
    const task = await (await post("right")).json();
    assert.equal(task.status, "success");
    const status = await fetch(`${jsr.url}api/publish_status/${task.id}`);
    assert.equal((await status.json()).status, "success");
    const meta = await (await fetch(`${jsr.url}@acme/tool/meta.json`)).json();
    assert.equal(meta.latest, "1.2.3");
    const versionMeta =
      await (await fetch(`${jsr.url}@acme/tool/1.2.3_meta.json`)).json();
    assert.deepEqual(versionMeta.exports, { ".": "./mod.ts" });
    const file = new TextEncoder().encode("export const x = 1;\n");
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", file));
    assert.deepEqual(versionMeta.manifest["/mod.ts"], {
      size: file.length,
      checksum: "sha256-" +
        [...digest].map((b) => b.toString(16).padStart(2, "0")).join(""),
    });
    assert.equal(
      await (await fetch(`${jsr.url}@acme/tool/1.2.3/mod.ts`)).text(),
      "export const x = 1;\n",
    );
    const again = await post("right");
    assert.equal(again.status, 409, "a version is published once");
    await again.body?.cancel();
    // An encoded "/" survives URL normalisation; decoded, it must not climb.
    const climb = await fetch(
      `${jsr.url}@acme/tool/1.2.3/${"..%2F".repeat(12)}etc%2Fpasswd`,
    );
    assert.equal(climb.status, 404);
    await climb.body?.cancel();
    const mismatch = await (await fetch(
      `${jsr.url}api/scopes/acme/packages/tool/versions/9.9.9`,
      {
        method: "POST",
        headers: { authorization: "Bearer right", "content-encoding": "gzip" },
        body: body as BodyInit,
      },
    )).json();
    assert.equal(mismatch.status, "failure");
    assert.match(mismatch.error.message, /URL says @acme\/tool@9\.9\.9/);
    assert.deepEqual(jsr.published, ["@acme/tool@1.2.3"]);
  } finally {
    await jsr.close();
    await Deno.remove(dir, { recursive: true });
  }
});
