/**
 * The volumes and binds a new container mounts, whichever way it asks for them: `-v NAME:/path`
 * binds, `--mount type=volume|bind|tmpfs`, `--volumes-from`, and the image's `VOLUME` paths
 * (with `-v /path`). {@link planMounts} reads them from the host config before anything is
 * created; {@link attachVolumes} creates and attaches the volumes; {@link specHostConfig} gives
 * the spec builder every volume at its host path; {@link mountPointsOf} answers inspect's
 * `Mounts`. The user's own `Binds` and `Mounts` stay as given in the stored host config.
 *
 * @module
 */
import { validateVolumeName } from "../volume/driver.ts";
import type { Mount } from "./containerd.ts";
import { invalidArgument, isNotFound, messageOf, systemError } from "./errors.ts";
import { mountRootfsAt, resolveRootfsPath } from "./rootfs.ts";
import { cleanPath } from "./spec.ts";
import type { HostConfig } from "./types.ts";

/** `POST /volumes/create`'s body, as the container manager fills it. */
export interface VolumeCreateRequest {
  Name?: string;
  Driver?: string;
  DriverOpts?: Record<string, string>;
  Labels?: Record<string, string>;
}

/** A volume attached to a container. */
export interface AttachedVolume {
  name: string;
  driver: string;
  /** The host path to bind-mount into the container. */
  source: string;
}

/** What the container manager needs of the volume manager. */
export interface VolumeAttacher {
  /** Gives container `containerId` volume `name` (created on demand); answers its host path. */
  attach(
    name: string,
    containerId: string,
    options?: { destination?: string; readOnly?: boolean },
  ): Promise<AttachedVolume>;
  /** Container `containerId` no longer uses volume `name`. */
  detach(name: string, containerId: string): Promise<void>;
  /**
   * Creates a volume (a random 64-hex name when none is given); an existing one of the same
   * driver is answered as it is, one of another driver is a conflict.
   */
  create(
    request: VolumeCreateRequest,
    options?: { anonymous?: boolean },
  ): Promise<{ Name: string }>;
  /** Removes volume `name`. */
  remove(name: string): Promise<void>;
  /** The record of volume `name`; throws NotFound. */
  record(name: string): { anonymous: boolean };
  /** The names of the volumes container `containerId` uses. */
  usedBy(containerId: string): string[];
}

/** Docker's inspect `Mounts` entry. */
export interface MountPoint {
  Type: "volume" | "bind" | "tmpfs";
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

/** A volume a new container mounts. */
export interface VolumeUse {
  /**
   * What asked for it: `Binds[index]`, `Mounts[index]`, a `--volumes-from` container, or the
   * image's `VOLUME` (and `-v /path`).
   */
  origin: "binds" | "mounts" | "from" | "image";
  /** Its index in `Binds` or `Mounts`; -1 for the others. */
  index: number;
  /** The volume's name; "" for a new anonymous volume. */
  name: string;
  /** The mount point, cleaned. */
  destination: string;
  readOnly: boolean;
  /** A bind's mode as given (`ro`, `rw,nocopy`, ""). */
  mode: string;
  /** Whether the image's content at `destination` goes into the volume while it is empty. */
  copy: boolean;
  /** The driver to create it with (`--mount volume-driver=`, `--volume-driver`). */
  driver?: string;
  driverOpts?: Record<string, string>;
  labels?: Record<string, string>;
}

/** What {@link planMounts} found. */
export interface MountPlan {
  /** Every volume to attach, in the order they were asked for. */
  volumes: VolumeUse[];
  /** Host-path binds inherited through `--volumes-from`, as the source container has them. */
  binds: MountPoint[];
}

/** Options of {@link planMounts}. */
export interface PlanMountsOptions {
  /**
   * The image's `VOLUME` paths merged with `-v /path` (`Config.Volumes`): each gets a new
   * anonymous volume unless something else is mounted there. Omit before the image is known.
   */
  imageVolumes?: Record<string, unknown> | null;
  /** The inspect `Mounts` of a `--volumes-from` container; throws NotFound. */
  mountsOf?: (ref: string) => readonly MountPoint[];
  /**
   * The volumes the container already has (an upgrade): each anonymous volume it would get at
   * one of their destinations is that volume instead, and those nothing else covers stay
   * mounted, so no data is left behind.
   */
  reuse?: readonly MountPoint[];
}

/**
 * Reads the volumes a container asks for out of its host config, and checks what the spec
 * builder cannot: volume names (no `/` or `..`), read-only anonymous volumes, `--volumes-from`
 * entries. As in Docker, the container's own binds, mounts and tmpfs win over `--volumes-from`
 * (where a later container wins over an earlier one), and both win over the image's volumes.
 */
export function planMounts(hostConfig: HostConfig, options: PlanMountsOptions = {}): MountPlan {
  const own: VolumeUse[] = [];
  const taken = new Set<string>();
  (hostConfig.Binds ?? []).forEach((bind, index) => {
    const parts = bind.split(":");
    const [source = "", destination = "", mode = ""] = parts;
    if (parts.length === 1 && source.startsWith("/")) {
      // Docker's API takes a bare path in Binds as an anonymous volume, like `-v /path`.
      taken.add(cleanPath(source));
      own.push(volumeUse("binds", index, "", source, { copy: true, hostConfig }));
      return;
    }
    if (parts.length >= 2 && destination.startsWith("/")) taken.add(cleanPath(destination));
    // Host paths, and malformed entries, are the spec builder's to check and report.
    if (parts.length < 2 || parts.length > 3 || source === "" || source.startsWith("/")) return;
    validateVolumeName(source);
    const flags = mode === "" ? [] : mode.split(",");
    own.push({
      ...volumeUse("binds", index, source, destination, {
        copy: !flags.includes("nocopy"),
        hostConfig,
      }),
      readOnly: flags.includes("ro"),
      mode,
    });
  });
  (hostConfig.Mounts ?? []).forEach((mount, index) => {
    if (mount.Target?.startsWith("/")) taken.add(cleanPath(mount.Target));
    if (mount.Type !== "volume") return;
    const source = mount.Source ?? "";
    if (source === "" && mount.ReadOnly) {
      throw invalidArgument(
        `invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes`,
      );
    }
    if (source !== "") validateVolumeName(source);
    const volumeOptions = mount.VolumeOptions ?? {};
    own.push({
      origin: "mounts",
      index,
      name: source,
      destination: mount.Target?.startsWith("/") ? cleanPath(mount.Target) : mount.Target ?? "",
      readOnly: mount.ReadOnly === true,
      mode: "",
      copy: volumeOptions.NoCopy !== true,
      driver: volumeOptions.DriverConfig?.Name || undefined,
      driverOpts: { ...(volumeOptions.DriverConfig?.Options ?? {}) },
      labels: { ...(volumeOptions.Labels ?? {}) },
    });
  });
  for (const path of Object.keys(hostConfig.Tmpfs ?? {})) {
    if (path.startsWith("/")) taken.add(cleanPath(path));
  }

  const inherited = new Map<string, VolumeUse | MountPoint>();
  for (const entry of hostConfig.VolumesFrom ?? []) {
    const { ref, mode } = parseVolumesFrom(entry);
    if (!options.mountsOf) throw invalidArgument("--volumes-from is not supported here");
    for (const point of options.mountsOf(ref)) {
      // A tmpfs holds nothing to share; the new container's own mounts win.
      const destination = cleanPath(point.Destination);
      if (point.Type === "tmpfs" || taken.has(destination)) continue;
      const rw = point.RW && mode !== "ro";
      if (point.Type === "volume" && point.Name) {
        inherited.set(destination, {
          ...volumeUse("from", -1, point.Name, destination, { copy: false }),
          readOnly: !rw,
        });
      } else if (point.Type === "bind") {
        inherited.set(destination, { ...point, Destination: destination, Mode: "", RW: rw });
      }
    }
  }
  const volumes = [...own];
  const binds: MountPoint[] = [];
  for (const [destination, use] of inherited) {
    taken.add(destination);
    if ("origin" in use) volumes.push(use);
    else binds.push(use);
  }
  for (const raw of Object.keys(options.imageVolumes ?? {})) {
    if (!raw.startsWith("/") || raw.split("/").includes("..")) {
      throw invalidArgument(`invalid volume specification: '${raw}': must be an absolute path`);
    }
    const path = cleanPath(raw);
    if (path === "/") throw invalidArgument(`invalid volume specification: '${raw}'`);
    if (taken.has(path)) continue;
    taken.add(path);
    volumes.push(volumeUse("image", -1, "", path, { copy: true, hostConfig }));
  }
  if (options.reuse) reuseVolumes(volumes, { reuse: options.reuse, taken });
  return { volumes, binds };
}

/**
 * Gives each anonymous volume of `volumes` the existing volume at its destination, and adds the
 * existing volumes no mount covers (see {@link PlanMountsOptions.reuse}).
 */
function reuseVolumes(
  volumes: VolumeUse[],
  options: { reuse: readonly MountPoint[]; taken: Set<string> },
): void {
  const existing = new Map<string, MountPoint>();
  for (const point of options.reuse) {
    if (point.Type === "volume" && point.Name) existing.set(cleanPath(point.Destination), point);
  }
  for (const use of volumes) {
    const point = existing.get(use.destination);
    if (!point) continue;
    existing.delete(use.destination);
    if (use.name !== "") continue;
    use.name = point.Name!;
    use.copy = false;
  }
  for (const [destination, point] of existing) {
    if (options.taken.has(destination)) continue;
    options.taken.add(destination);
    volumes.push({
      ...volumeUse("image", -1, point.Name!, destination, { copy: false }),
      readOnly: !point.RW,
    });
  }
}

function volumeUse(
  origin: VolumeUse["origin"],
  index: number,
  name: string,
  destination: string,
  options: { copy: boolean; hostConfig?: HostConfig },
): VolumeUse {
  return {
    origin,
    index,
    name,
    destination: destination.startsWith("/") ? cleanPath(destination) : destination,
    readOnly: false,
    mode: "",
    copy: options.copy,
    // Docker's `--volume-driver` applies to `-v` volumes and the image's, not to `--mount`.
    driver: options.hostConfig?.VolumeDriver || undefined,
  };
}

/** `CONTAINER[:ro|rw]`, as moby's `ParseVolumesFrom` reads it. */
function parseVolumesFrom(entry: string): { ref: string; mode: string } {
  if (entry === "") throw invalidArgument("volumes-from specification cannot be an empty string");
  const colon = entry.indexOf(":");
  const ref = colon < 0 ? entry : entry.slice(0, colon);
  const mode = colon < 0 ? "rw" : entry.slice(colon + 1);
  if (mode !== "ro" && mode !== "rw") throw invalidArgument(`invalid mode: ${mode}`);
  return { ref, mode };
}

/**
 * A copy of `hostConfig` for the spec builder: each volume's entry in `Binds` or `Mounts` gets
 * the host path `sourceOf` answers, and the inherited and image volumes and binds are added as
 * binds.
 */
export function specHostConfig(
  hostConfig: HostConfig,
  plan: MountPlan,
  sourceOf: (use: VolumeUse) => string,
): HostConfig {
  const binds = [...(hostConfig.Binds ?? [])];
  const mounts = [...(hostConfig.Mounts ?? [])];
  for (const use of plan.volumes) {
    const source = sourceOf(use);
    if (use.origin === "binds") {
      // `nocopy` is about filling the volume, not a mount flag.
      const mode = use.mode.split(",").filter((f) => f !== "" && f !== "nocopy").join(",");
      binds[use.index] = [source, use.destination, mode].filter((p, i) => i < 2 || p !== "")
        .join(":");
    } else if (use.origin === "mounts") {
      mounts[use.index] = { ...mounts[use.index]!, Source: source };
    } else {
      binds.push(`${source}:${use.destination}${use.readOnly ? ":ro" : ""}`);
    }
  }
  for (const bind of plan.binds) {
    const mode = [bind.RW ? "rw" : "ro", bind.Propagation].filter((f) => f !== "").join(",");
    binds.push(`${bind.Source}:${bind.Destination}:${mode}`);
  }
  return { ...hostConfig, Binds: binds, Mounts: mounts };
}

/** Inspect's `Mounts`: binds, `--mount` entries, inherited binds and the attached volumes. */
export function mountPointsOf(
  hostConfig: HostConfig,
  plan: MountPlan,
  attached: ReadonlyMap<VolumeUse, AttachedVolume>,
): MountPoint[] {
  const points: MountPoint[] = [];
  const volumePoint = (use: VolumeUse): MountPoint => {
    const volume = attached.get(use)!;
    return {
      Type: "volume",
      Name: volume.name,
      Source: volume.source,
      Destination: use.destination,
      Driver: volume.driver,
      // Docker shows `z` for a `-v` volume without a mode, nothing for the others.
      Mode: use.origin === "binds" ? use.mode || "z" : "",
      RW: !use.readOnly,
      Propagation: "",
    };
  };
  const byBind = new Map(plan.volumes.filter((u) => u.origin === "binds").map((u) => [u.index, u]));
  const byMount = new Map(
    plan.volumes.filter((u) => u.origin === "mounts").map((u) => [u.index, u]),
  );
  (hostConfig.Binds ?? []).forEach((bind, index) => {
    const use = byBind.get(index);
    if (use) {
      points.push(volumePoint(use));
      return;
    }
    const parts = bind.split(":");
    const [source = "", destination = "", mode = ""] = parts;
    if (parts.length < 2 || !source.startsWith("/")) return;
    const flags = mode === "" ? [] : mode.split(",");
    points.push({
      Type: "bind",
      Source: source,
      Destination: cleanPath(destination),
      Mode: mode,
      RW: !flags.includes("ro"),
      Propagation: flags.find((f) => /^r?(private|shared|slave)$/.test(f)) ?? "rprivate",
    });
  });
  (hostConfig.Mounts ?? []).forEach((mount, index) => {
    const use = byMount.get(index);
    if (use) {
      points.push(volumePoint(use));
      return;
    }
    if (mount.Type !== "bind" && mount.Type !== "tmpfs") return;
    points.push({
      Type: mount.Type,
      Source: mount.Source ?? "",
      Destination: cleanPath(mount.Target),
      Mode: "",
      RW: mount.ReadOnly !== true,
      Propagation: mount.Type === "bind" ? mount.BindOptions?.Propagation || "rprivate" : "",
    });
  });
  points.push(...plan.binds);
  for (const use of plan.volumes) {
    if (use.origin === "from" || use.origin === "image") points.push(volumePoint(use));
  }
  return points;
}

/** Options of {@link attachVolumes}. */
export interface AttachVolumesOptions {
  /** The container the volumes are attached to. */
  containerId: string;
  /** The container's rootfs mounts, where the image's content is copied from. */
  rootfs: Mount[];
  /** A directory of the daemon's where the rootfs is mounted while content is copied. */
  scratchDir: string;
  /** Each step's undo is added here, to be run in reverse if the create fails. */
  undo: Array<() => Promise<void> | void>;
}

/**
 * Creates the volumes of `plan` that do not exist yet (anonymous ones, and named ones with
 * their driver, options and labels), attaches every one to the container, and copies the
 * image's content into each one that is empty, as Docker does on a volume's first use. Every
 * volume created and every attach registers its undo, so a failed create leaves nothing.
 */
export async function attachVolumes(
  volumes: VolumeAttacher,
  plan: MountPlan,
  options: AttachVolumesOptions,
): Promise<Map<VolumeUse, AttachedVolume>> {
  const attached = new Map<VolumeUse, AttachedVolume>();
  const id = options.containerId;
  const copies: Array<{ path: string; target: string }> = [];
  for (const use of plan.volumes) {
    let name = use.name;
    const request: VolumeCreateRequest = {
      Driver: use.driver,
      DriverOpts: use.driverOpts,
      Labels: use.labels,
    };
    if (name === "") {
      name = (await volumes.create(request, { anonymous: true })).Name;
      options.undo.push(() => volumes.remove(name));
    } else if (!exists(volumes, name)) {
      await volumes.create({ ...request, Name: name });
      options.undo.push(() => volumes.remove(name));
    } else if (use.driver) {
      // An existing volume of another driver is a conflict, as in Docker.
      await volumes.create({ Name: name, Driver: use.driver });
    }
    const volume = await volumes.attach(name, id, {
      destination: use.destination,
      readOnly: use.readOnly,
    });
    options.undo.push(() => volumes.detach(name, id));
    attached.set(use, volume);
    if (use.copy && await isEmptyDir(volume.source)) {
      copies.push({ path: use.destination, target: volume.source });
    }
  }
  if (copies.length > 0) await copyImageContent(options, copies);
  return attached;
}

function exists(volumes: VolumeAttacher, name: string): boolean {
  try {
    volumes.record(name);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Whether a volume holds nothing yet. */
async function isEmptyDir(path: string): Promise<boolean> {
  for await (const entry of Deno.readDir(path)) {
    // A fresh ext4 image (a local volume with `size=`) starts with lost+found.
    if (entry.name !== "lost+found") return false;
  }
  return true;
}

/**
 * Copies what the image has at each `path` into the volume directory `target`, from the image's
 * merged view (every layer, whiteouts and opaque directories applied): the rootfs is mounted
 * under the scratch directory for the copy and unmounted after. `cp -a` keeps modes, ownership,
 * links and times. Symlinks on the way are followed inside the image, never on the host; a path
 * the image lacks, or that is not a directory, leaves the volume empty.
 */
async function copyImageContent(
  options: { rootfs: Mount[]; scratchDir: string },
  copies: Array<{ path: string; target: string }>,
): Promise<void> {
  const sources: Array<{ path: string; resolved: string; target: string }> = [];
  for (const copy of copies) {
    const found = await resolveRootfsPath(options.rootfs, cleanPath(copy.path));
    if (found && found.info.isDirectory && found.path !== "/") {
      sources.push({ ...copy, resolved: found.path });
    }
  }
  if (sources.length === 0) return;
  await using root = await mountRootfsAt(options.rootfs, options.scratchDir);
  for (const source of sources) {
    const output = await new Deno.Command("cp", {
      args: ["-a", "--", `${root.path}${source.resolved}/.`, `${source.target}/`],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!output.success) {
      const stderr = new TextDecoder().decode(output.stderr).trim();
      throw systemError(`copying the image's ${source.path} into its volume: ${stderr}`);
    }
  }
}

/**
 * Docker refuses a `--mount type=bind` whose source does not exist (unless `CreateMountpoint`
 * asks to create it); `-v` binds instead get their source created at start
 * ({@link createBindSources}). Runs before anything is created.
 */
export async function checkBindSources(hostConfig: HostConfig): Promise<void> {
  for (const mount of hostConfig.Mounts ?? []) {
    if (mount.Type !== "bind" || !mount.Source || mount.BindOptions?.CreateMountpoint) continue;
    try {
      await Deno.stat(mount.Source);
    } catch (err) {
      const prefix = `invalid mount config for type "bind": `;
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
        throw invalidArgument(`${prefix}bind source path does not exist: ${mount.Source}`, err);
      }
      throw invalidArgument(`${prefix}${messageOf(err)}`, err);
    }
  }
}

/**
 * Creates the missing host directories of `-v /host:/path` binds (and of `--mount` binds with
 * `CreateMountpoint`), as Docker does when a container starts.
 */
export async function createBindSources(hostConfig: HostConfig): Promise<void> {
  const sources = [
    ...(hostConfig.Binds ?? []).map((bind) => bind.split(":")).filter((parts) =>
      parts.length >= 2 && parts[0]!.startsWith("/")
    ).map((parts) => parts[0]!),
    ...(hostConfig.Mounts ?? []).filter((m) =>
      m.Type === "bind" && m.BindOptions?.CreateMountpoint && m.Source
    ).map((m) => m.Source!),
  ];
  for (const source of sources) {
    try {
      await Deno.lstat(source);
      continue;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) continue;
    }
    try {
      await Deno.mkdir(source, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw systemError(
        `error while creating mount source path '${source}': ${messageOf(err)}`,
        err,
      );
    }
  }
}
