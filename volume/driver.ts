/**
 * What every volume driver is (Docker's `volume.Driver`: name, create, remove, path, mount,
 * unmount, capabilities), and the helpers the built-in drivers share: volume name validation,
 * Docker-style size parsing, and running `mount`/`umount`.
 *
 * @module
 */
import { invalidArgument, systemError } from "../engine/errors.ts";

/** A volume as a driver sees it: its name, its options and what the driver recorded. */
export interface DriverVolume {
  /** The volume's name. */
  name: string;
  /** The `--opt` options it was created with. */
  options: Record<string, string>;
  /** The host path containers mount (set by the driver's create). */
  mountpoint: string;
  /** What the driver reports in `volume inspect`'s `Status` (its backend, size, ...). */
  status: Record<string, unknown>;
}

/** Docker's driver capabilities. */
export interface DriverCapabilities {
  /** `local`: volumes of this driver exist on this host only. */
  scope: "local" | "global";
}

/** A volume driver. Every method that fails leaves nothing behind. */
export interface VolumeDriver {
  /** The name given to `--driver`. */
  readonly name: string;
  /** Checks `options`, creates the volume and answers its mountpoint and status. */
  create(name: string, options: Record<string, string>): Promise<DriverVolume>;
  /** Deletes the volume and its data. */
  remove(volume: DriverVolume): Promise<void>;
  /** The host path of the volume's data. */
  path(volume: DriverVolume): string;
  /** Makes the volume ready for container `containerId`; answers the host path to bind. */
  mount(volume: DriverVolume, containerId: string): Promise<string>;
  /** Container `containerId` no longer uses the volume. */
  unmount(volume: DriverVolume, containerId: string): Promise<void>;
  /** Re-establishes what the driver keeps mounted after a daemon (or host) restart. */
  restore(volume: DriverVolume): Promise<void>;
  /**
   * Removes whatever a create of volume `name` with `options` that a crash cut short may have
   * left; nothing there is not an error.
   */
  forget?(name: string, options: Record<string, string>): Promise<void>;
  /** The driver's capabilities. */
  capabilities(): DriverCapabilities;
  /**
   * What the driver reports of the volume now, for `volume inspect` (a plugin asks its `Get`);
   * drivers without it are shown as recorded.
   */
  describe?(volume: DriverVolume): Promise<{ mountpoint: string; status: Record<string, unknown> }>;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Checks a volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, no `/`, no `..`); throws InvalidArgument. */
export function validateVolumeName(name: string): string {
  // `..` matches the pattern's later characters, and would climb out of the volume root.
  if (!NAME.test(name) || name.includes("..")) {
    throw invalidArgument(
      `create ${name}: "${name}" includes invalid characters for a local volume name, ` +
        `only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed (and no "..")`,
    );
  }
  return name;
}

const SIZE = /^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$/;
const UNITS: Record<string, number> = {
  "": 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

/** Parses a size as Docker's `units.RAMInBytes` (`10G`, `8m`, `512KiB`, `1024`); throws on garbage. */
export function parseSize(text: string): number {
  const match = SIZE.exec(text.trim());
  if (!match) throw invalidArgument(`invalid size: '${text}'`);
  const bytes = Math.floor(Number(match[1]) * UNITS[(match[2] ?? "").toLowerCase()]!);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw invalidArgument(`invalid size: '${text}'`);
  return bytes;
}

/** Throws InvalidArgument naming the first key of `options` that `known` lacks. */
export function checkOptions(
  driver: string,
  options: Record<string, string>,
  known: readonly string[],
): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw invalidArgument(
        `invalid option for the ${driver} volume driver: "${key}" (known: ${known.join(", ")})`,
      );
    }
  }
}

/** Runs a command; throws a system error carrying its stderr when it fails. */
export async function run(command: string, args: string[]): Promise<void> {
  const output = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" })
    .output();
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim();
    throw systemError(`${command} ${args.join(" ")}: ${stderr || `exit ${output.code}`}`);
  }
}

/** Whether something is mounted exactly at `path` (per /proc/self/mountinfo). */
export async function isMountPoint(path: string): Promise<boolean> {
  const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
  return mountinfo.split("\n").some((line) => unescapeMountPath(line.split(" ")[4] ?? "") === path);
}

/** Unmounts `path` if something is mounted there. */
export async function unmountIfMounted(path: string): Promise<void> {
  if (await isMountPoint(path)) await run("umount", [path]);
}

/**
 * Unmounts a volume's backend (if mounted) and deletes the volume's directory, the parent of its
 * mount point (`<root>/<name>/_data`); a directory already gone is not an error.
 */
export async function removeVolumeDir(mountpoint: string): Promise<void> {
  await unmountIfMounted(mountpoint);
  const dir = mountpoint.slice(0, mountpoint.lastIndexOf("/"));
  await Deno.remove(dir, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(field: string): string {
  return field.replace(
    /\\([0-7]{3})/g,
    (_, octal: string) => String.fromCharCode(parseInt(octal, 8)),
  );
}
