// The bare runtime's baseline for bench/beside_mcp.ts: a TypeScript script
// that only waits, run the way the wrapper is (`deno run`, `node x.ts`).
setTimeout(() => {}, 3_600_000);
