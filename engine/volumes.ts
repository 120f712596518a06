/**
 * Named volumes in a container's `-v` binds: which binds name a volume (`data:/var/lib/db:ro`),
 * the host config the spec builder sees once each volume's host path is known, and the
 * container's `Mounts` as Docker's inspect shows them. The user's own `Binds` stay as given in
 * the stored host config.
 *
 * @module
 */
import { validateVolumeName } from "../volume/driver.ts";
import type { Mount } from "./containerd.ts";
import { invalidArgument, systemError } from "./errors.ts";
import { layerDirs } from "./rootfs.ts";
import type { HostConfig } from "./types.ts";

/** What the container manager needs of the volume manager. */
export interface VolumeAttacher {
  /** Gives container `containerId` volume `name` (created on demand); answers its host path. */
  attach(
    name: string,
    containerId: string,
    options?: { destination?: string; readOnly?: boolean },
  ): Promise<{ name: string; driver: string; source: string }>;
  /** Container `containerId` no longer uses volume `name`. */
  detach(name: string, containerId: string): Promise<void>;
  /** Creates a volume (a random 64-hex name when none is given). */
  create(
    request: { Name?: string },
    options?: { anonymous?: boolean },
  ): Promise<{ Name: string }>;
  /** Removes volume `name`. */
  remove(name: string): Promise<void>;
  /** The record of volume `name`; throws NotFound. */
  record(name: string): { anonymous: boolean };
}

/** A `-v NAME:/path[:mode]` entry of `HostConfig.Binds`. */
export interface VolumeBind {
  /** Its index in `Binds`. */
  index: number;
  name: string;
  destination: string;
  /** The mode part as given (`ro`, `rw,rshared`, `""`). */
  mode: string;
  readOnly: boolean;
}

/** Docker's inspect `Mounts` entry. */
export interface MountPoint {
  Type: "volume" | "bind";
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

/** The binds whose source is a volume name, not a host path; throws on a bad volume name. */
export function volumeBinds(binds: readonly string[]): VolumeBind[] {
  const found: VolumeBind[] = [];
  binds.forEach((bind, index) => {
    const parts = bind.split(":");
    const [source = "", destination = "", mode = ""] = parts;
    // Host paths, and malformed entries, are the spec builder's to check and report.
    if (parts.length < 2 || parts.length > 3 || source === "" || source.startsWith("/")) return;
    validateVolumeName(source);
    const readOnly = mode.split(",").includes("ro");
    found.push({ index, name: source, destination, mode, readOnly });
  });
  return found;
}

/** A copy of `hostConfig` whose volume binds have the host path `sourceOf` answers. */
export function withVolumeSources(
  hostConfig: HostConfig,
  binds: readonly VolumeBind[],
  sourceOf: (bind: VolumeBind) => string,
): HostConfig {
  if (binds.length === 0) return hostConfig;
  const rewritten = [...(hostConfig.Binds ?? [])];
  for (const bind of binds) {
    rewritten[bind.index] = [sourceOf(bind), bind.destination, bind.mode].filter((p, i) =>
      i < 2 || p !== ""
    ).join(":");
  }
  return { ...hostConfig, Binds: rewritten };
}

/** Inspect's `Mounts` for the binds: host-path binds and the attached volumes. */
export function mountPointsOf(
  binds: readonly string[],
  volumes: ReadonlyMap<number, { name: string; driver: string; source: string }>,
): MountPoint[] {
  return binds.flatMap((bind, index): MountPoint[] => {
    const [source = "", destination = "", mode = ""] = bind.split(":");
    const flags = mode === "" ? [] : mode.split(",");
    const propagation = flags.find((f) => /^r?(private|shared|slave)$/.test(f)) ?? "";
    const rw = !flags.includes("ro");
    const volume = volumes.get(index);
    if (volume) {
      return [{
        Type: "volume",
        Name: volume.name,
        Source: volume.source,
        Destination: destination,
        Driver: volume.driver,
        Mode: mode === "" ? "z" : mode,
        RW: rw,
        Propagation: propagation,
      }];
    }
    if (!source.startsWith("/")) return [];
    return [{
      Type: "bind",
      Source: source,
      Destination: destination,
      Mode: mode,
      RW: rw,
      Propagation: propagation || "rprivate",
    }];
  });
}

/** A container path without its trailing slashes (`/data/` and `/data` are one mount point). */
function cleanPath(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}

/**
 * The paths of `volumes` (the image's `VOLUME` entries and `-v /path`, merged in
 * `Config.Volumes`) that get a new anonymous volume: those no bind, `--mount` or `--tmpfs`
 * already covers, as Docker skips an image volume the user mounted something on.
 */
export function anonymousDestinations(
  volumes: Record<string, unknown> | null | undefined,
  hostConfig: HostConfig,
): string[] {
  const taken = new Set<string>([
    ...(hostConfig.Binds ?? []).map((bind) => cleanPath(bind.split(":")[1] ?? "")),
    ...(hostConfig.Mounts ?? []).map((mount) => cleanPath(mount.Target ?? "")),
    ...Object.keys(hostConfig.Tmpfs ?? {}).map(cleanPath),
  ]);
  const found: string[] = [];
  for (const raw of Object.keys(volumes ?? {})) {
    const path = cleanPath(raw);
    if (!path.startsWith("/") || path.split("/").includes("..")) {
      throw invalidArgument(`invalid volume specification: '${raw}': must be an absolute path`);
    }
    if (path === "/") throw invalidArgument(`invalid volume specification: '${raw}'`);
    if (taken.has(path)) continue;
    taken.add(path);
    found.push(path);
  }
  return found;
}

/**
 * Copies what the image has at `path` into the new, empty volume directory `target`, as Docker
 * fills an anonymous volume: read from the snapshot's directories (no mount needed), taking the
 * topmost layer where `path` is a directory; `cp -a` keeps modes, ownership, links and times.
 * A path the image lacks, or hides with a whiteout, leaves the volume empty.
 */
export async function copyImageContent(
  mounts: Mount[],
  path: string,
  target: string,
): Promise<void> {
  const relative = path.replace(/^\/+/, "");
  for (const dir of layerDirs(mounts)) {
    const source = `${dir}/${relative}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(source);
    } catch {
      continue;
    }
    if (!info.isDirectory) return;
    const output = await new Deno.Command("cp", {
      args: ["-a", "--", `${source}/.`, `${target}/`],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!output.success) {
      const stderr = new TextDecoder().decode(output.stderr).trim();
      throw systemError(`copying the image's ${path} into its volume: ${stderr}`);
    }
    return;
  }
}
