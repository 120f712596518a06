/**
 * Named volumes in a container's `-v` binds: which binds name a volume (`data:/var/lib/db:ro`),
 * the host config the spec builder sees once each volume's host path is known, and the
 * container's `Mounts` as Docker's inspect shows them. The user's own `Binds` stay as given in
 * the stored host config.
 *
 * @module
 */
import { validateVolumeName } from "../volume/driver.ts";
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
