/**
 * Builds, from a version published to the local JSR registry
 * (`scripts/local_jsr.ts`), the package JSR's npm compatibility layer would
 * serve for it (`npm.jsr.io`, installed by `npx jsr add`):
 *
 * - named `@jsr/<scope>__<name>`, with the published version;
 * - each TypeScript module compiled to JavaScript plus a declaration file,
 *   beside one another as in the source tree, relative imports ending `.js`;
 * - `npm:` specifiers turned into bare package names, and each such package
 *   declared in `dependencies` with the range the specifier carried;
 * - an `exports` map with `types` and `default` conditions for every export
 *   of the config file.
 *
 * It compiles the files as published (after `deno publish` rewrote them),
 * not the checkout, so what it proves is what a Node user would get. `jsr:`
 * dependencies would become `@jsr/…` packages; this package has none, and
 * the build stops if one appears rather than ship something untested.
 *
 * Usage: `deno run -A scripts/jsr_npm_layer.ts PUBLISHED_VERSION_DIR OUT_DIR`
 * (OUT_DIR inside the checkout, so `tsc` finds `@types/node` and the
 * dependencies' types in its `node_modules`). Prints the package's directory.
 *
 * @module
 */
import { dirname, join, relative, resolve } from "node:path";

/** What {@linkcode buildNpmLayer} made. */
export interface NpmLayer {
  /** The package directory, ready for `npm pack` or `npm publish`. */
  dir: string;
  /** Its `package.json`. */
  packageJson: {
    name: string;
    version: string;
    dependencies: Record<string, string>;
    exports: Record<string, { types: string; default: string }>;
  };
}

const NPM_SPECIFIER =
  /(["'])npm:((?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*)@([^/"']+)(\/[^"']*)?\1/g;
const IMPORT_LINE =
  /^\s*(?:import|export)\b[^\n]*\bfrom\s+["']|import\(\s*["']/;

/**
 * Builds the npm package from `publishedDir` (`…/@scope/name/<version>`,
 * beside its `<version>_meta.json`) into `outDir`.
 */
export async function buildNpmLayer(
  publishedDir: string,
  outDir: string,
  tsc = "node_modules/.bin/tsc",
): Promise<NpmLayer> {
  publishedDir = resolve(publishedDir);
  outDir = resolve(outDir);
  const version = publishedDir.split("/").at(-1)!;
  const meta = JSON.parse(
    await Deno.readTextFile(`${publishedDir}_meta.json`),
  ) as { manifest: Record<string, unknown>; exports: Record<string, string> };
  const config = JSON.parse(
    await Deno.readTextFile(join(publishedDir, "deno.json")),
  ) as {
    name: string;
    version: string;
    description?: string;
    license?: string;
  };
  if (config.version !== version) {
    throw new Error(`deno.json says ${config.version}, directory ${version}`);
  }
  const [scope, name] = config.name.slice(1).split("/");
  const src = join(outDir, "src");
  const pkg = join(outDir, "package");
  await Deno.remove(outDir, { recursive: true }).catch(() => {});
  const dependencies: Record<string, string> = {};
  for (const path of Object.keys(meta.manifest)) {
    const target = join(src, path);
    await Deno.mkdir(dirname(target), { recursive: true });
    if (!/\.[mc]?ts$/.test(path)) {
      await Deno.copyFile(join(publishedDir, path), target);
      continue;
    }
    const lines = (await Deno.readTextFile(join(publishedDir, path)))
      .split("\n").map((line) => {
        if (!IMPORT_LINE.test(line)) return line;
        if (/["']jsr:/.test(line)) {
          throw new Error(`${path}: jsr: dependencies are not built: ${line}`);
        }
        return line.replace(NPM_SPECIFIER, (_, q, dep, range, sub = "") => {
          if (dependencies[dep] && dependencies[dep] !== range) {
            throw new Error(
              `${dep} is imported as ${dependencies[dep]} and ${range}`,
            );
          }
          dependencies[dep] = range;
          return `${q}${dep}${sub}${q}`;
        });
      });
    await Deno.writeTextFile(target, lines.join("\n"));
  }
  const entries = Object.values(meta.exports).map((p) => join(src, p));
  await Deno.writeTextFile(
    join(src, "tsconfig.json"),
    JSON.stringify(
      {
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          rewriteRelativeImportExtensions: true,
          resolveJsonModule: true,
          verbatimModuleSyntax: true,
          declaration: true,
          strict: true,
          skipLibCheck: true,
          lib: ["ES2022", "DOM"],
          types: ["node"],
          rootDir: ".",
          outDir: pkg,
        },
        files: entries.map((e) => relative(src, e)),
      },
      null,
      2,
    ),
  );
  const out = await new Deno.Command(resolve(tsc), {
    args: ["-p", join(src, "tsconfig.json")],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `tsc failed:\n${new TextDecoder().decode(out.stdout)}${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  for (const extra of ["README.md", "LICENSE"]) {
    await Deno.copyFile(join(publishedDir, extra), join(pkg, extra)).catch(
      () => {},
    );
  }
  const exports: NpmLayer["packageJson"]["exports"] = {};
  for (const [key, path] of Object.entries(meta.exports)) {
    const js = path.replace(/\.[mc]?ts$/, ".js");
    exports[key] = { types: js.replace(/\.js$/, ".d.ts"), default: js };
  }
  const packageJson = {
    name: `@jsr/${scope}__${name}`,
    version,
    description: config.description,
    license: config.license,
    type: "module",
    homepage: `https://jsr.io/${config.name}`,
    dependencies,
    exports,
  };
  await Deno.writeTextFile(
    join(pkg, "package.json"),
    JSON.stringify(packageJson, null, 2) + "\n",
  );
  for (const [key, e] of Object.entries(exports)) {
    for (const file of [e.types, e.default]) {
      try {
        await Deno.stat(join(pkg, file));
      } catch {
        throw new Error(`export ${key}: ${file} was not built`);
      }
    }
  }
  return { dir: pkg, packageJson };
}

if (import.meta.main) {
  const [from, to] = Deno.args;
  if (!from || !to) {
    console.error(
      "usage: jsr_npm_layer.ts PUBLISHED_VERSION_DIR OUT_DIR (inside the checkout)",
    );
    Deno.exit(2);
  }
  const layer = await buildNpmLayer(from, to);
  console.log(layer.dir);
}
