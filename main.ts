/**
 * pouch: one program that is both the daemon (`pouch daemon ...`) and the CLI (anything else).
 * The CLI path never loads the daemon's modules (gRPC, protobuf, node:http).
 *
 * @module
 */

/** Runs pouch with `args`; resolves with the process exit code. */
export async function main(args: string[]): Promise<number> {
  if (args[0] === "daemon") {
    const { runDaemon } = await import("./engine/daemon.ts");
    return await runDaemon(args.slice(1));
  }
  const { runCli } = await import("./cmd/mod.ts");
  return await runCli(args);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
