/**
 * Routes of `/networks`: Docker's network API (list, inspect, create, remove, prune, connect,
 * disconnect) against the network manager. Request bodies are checked here, field by field, so
 * the manager gets typed requests with only the fields it knows.
 *
 * @module
 */
import { Hono } from "hono";
import { invalidArgument, notFound } from "../errors.ts";
import { type ApiEnv, filtersQuery, jsonBody } from "./http.ts";

/** An IPAM pool of a network: Docker's `IPAMConfig`. */
export interface IpamPool {
  Subnet: string;
  Gateway: string;
  IPRange?: string;
}

/** A container attached to a network, as `GET /networks/{id}` shows it. */
export interface NetworkContainer {
  Name: string;
  EndpointID: string;
  MacAddress: string;
  /** With its prefix length, e.g. `172.20.0.2/16`. */
  IPv4Address: string;
  IPv6Address: string;
}

/** A network as Docker's API shows it (`Network` in Moby's swagger). */
export interface NetworkResource {
  Name: string;
  Id: string;
  /** RFC 3339. */
  Created: string;
  /** Always `local` here: there is no swarm. */
  Scope: string;
  Driver: string;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: IpamPool[] };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  /** Attached containers by container ID. */
  Containers: Record<string, NetworkContainer>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

/** The body of `POST /networks/create`, checked (`NetworkCreateRequest` in Moby's swagger). */
export interface NetworkCreateRequest {
  Name: string;
  CheckDuplicate?: boolean;
  /** `bridge` when absent. */
  Driver?: string;
  Internal?: boolean;
  Attachable?: boolean;
  Ingress?: boolean;
  IPAM?: {
    Driver?: string;
    Config?: Array<{ Subnet?: string; IPRange?: string; Gateway?: string }>;
    Options?: Record<string, string>;
  };
  EnableIPv6?: boolean;
  Options?: Record<string, string>;
  Labels?: Record<string, string>;
}

/** The body of `POST /networks/{id}/connect`. */
export interface NetworkConnectRequest {
  Container: string;
  EndpointConfig?: { IPAMConfig?: { IPv4Address?: string }; Aliases?: string[] };
}

/** The body of `POST /networks/{id}/disconnect`. */
export interface NetworkDisconnectRequest {
  Container: string;
  Force?: boolean;
}

/** What the /networks routes need of the network manager. */
export interface NetworksBackend {
  /** Networks matching `filters`: name, id, driver, label, type (custom|builtin), dangling. */
  list(filters: Record<string, string[]>): NetworkResource[];
  /** One network by ID, ID prefix or name; NotFound "network X not found". */
  inspect(idOrName: string): NetworkResource;
  /** Creates a network; AlreadyExists/Conflict for a taken name or overlapping subnet. */
  create(request: NetworkCreateRequest): Promise<{ Id: string; Warning: string }>;
  /** Removes a network: Conflict with containers attached, Forbidden for a predefined one. */
  remove(idOrName: string): Promise<void>;
  /** Removes the unused user networks matching `filters`. */
  prune(filters: Record<string, string[]>): Promise<{ NetworksDeleted: string[] }>;
  /** Attaches a container to a network. */
  connect(idOrName: string, request: NetworkConnectRequest): Promise<void>;
  /** Detaches a container from a network. */
  disconnect(idOrName: string, request: NetworkDisconnectRequest): Promise<void>;
}

/** Docker's rule for network names (the design's name rule, one character allowed). */
const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

type Json = Record<string, unknown>;

/** A field of a body: undefined when absent or null (Go clients send null for empty maps). */
function field(body: Json, key: string): unknown {
  const value = body[key];
  return value === null ? undefined : value;
}

function optionalString(body: Json, key: string, where: string): string | undefined {
  const value = field(body, key);
  if (value === undefined || typeof value === "string") return value;
  throw invalidArgument(`invalid ${where}${key}: must be a string`);
}

function optionalBool(body: Json, key: string, where: string): boolean | undefined {
  const value = field(body, key);
  if (value === undefined || typeof value === "boolean") return value;
  throw invalidArgument(`invalid ${where}${key}: must be a boolean`);
}

function optionalObject(body: Json, key: string, where: string): Json | undefined {
  const value = field(body, key);
  if (value === undefined) return undefined;
  if (typeof value === "object" && !Array.isArray(value)) return value as Json;
  throw invalidArgument(`invalid ${where}${key}: must be an object`);
}

function optionalStringMap(
  body: Json,
  key: string,
  where: string,
): Record<string, string> | undefined {
  const map = optionalObject(body, key, where);
  if (map === undefined) return undefined;
  for (const [k, v] of Object.entries(map)) {
    if (typeof v !== "string") {
      throw invalidArgument(`invalid ${where}${key}.${k}: must be a string`);
    }
  }
  return map as Record<string, string>;
}

/** Drops undefined fields, so the manager sees only what the client sent. */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** Checks a create body and keeps the fields the manager knows. */
export function parseNetworkCreate(body: Json): NetworkCreateRequest {
  const name = field(body, "Name");
  if (typeof name !== "string" || name === "") {
    throw invalidArgument("network name is required");
  }
  if (!NAME_PATTERN.test(name)) {
    throw invalidArgument(
      `invalid network name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
    );
  }
  let ipam: NetworkCreateRequest["IPAM"];
  const ipamBody = optionalObject(body, "IPAM", "");
  if (ipamBody) {
    const config = field(ipamBody, "Config");
    if (config !== undefined && !Array.isArray(config)) {
      throw invalidArgument("invalid IPAM.Config: must be an array");
    }
    ipam = defined({
      Driver: optionalString(ipamBody, "Driver", "IPAM."),
      Options: optionalStringMap(ipamBody, "Options", "IPAM."),
      Config: config?.map((pool: unknown, i: number) => {
        const where = `IPAM.Config[${i}].`;
        if (typeof pool !== "object" || pool === null || Array.isArray(pool)) {
          throw invalidArgument(`invalid IPAM.Config[${i}]: must be an object`);
        }
        return defined({
          Subnet: optionalString(pool as Json, "Subnet", where),
          IPRange: optionalString(pool as Json, "IPRange", where),
          Gateway: optionalString(pool as Json, "Gateway", where),
        });
      }),
    });
  }
  return defined({
    Name: name,
    CheckDuplicate: optionalBool(body, "CheckDuplicate", ""),
    // Docker's CLI sends "" when --driver is not given; the default is bridge.
    Driver: optionalString(body, "Driver", "") || undefined,
    Internal: optionalBool(body, "Internal", ""),
    Attachable: optionalBool(body, "Attachable", ""),
    Ingress: optionalBool(body, "Ingress", ""),
    IPAM: ipam,
    EnableIPv6: optionalBool(body, "EnableIPv6", ""),
    Options: optionalStringMap(body, "Options", ""),
    Labels: optionalStringMap(body, "Labels", ""),
  });
}

function containerOf(body: Json): string {
  const container = field(body, "Container");
  if (typeof container !== "string" || container === "") {
    throw invalidArgument("a container name or ID is required in Container");
  }
  return container;
}

/** Checks a connect body: the container, and the endpoint's address and aliases. */
export function parseNetworkConnect(body: Json): NetworkConnectRequest {
  const container = containerOf(body);
  const endpoint = optionalObject(body, "EndpointConfig", "");
  if (!endpoint) return { Container: container };
  const ipamConfig = optionalObject(endpoint, "IPAMConfig", "EndpointConfig.");
  const aliases = field(endpoint, "Aliases");
  if (
    aliases !== undefined &&
    !(Array.isArray(aliases) && aliases.every((a) => typeof a === "string"))
  ) {
    throw invalidArgument("invalid EndpointConfig.Aliases: must be an array of strings");
  }
  const address = ipamConfig &&
    optionalString(ipamConfig, "IPv4Address", "EndpointConfig.IPAMConfig.");
  return {
    Container: container,
    EndpointConfig: defined({
      IPAMConfig: address ? { IPv4Address: address } : undefined,
      Aliases: aliases as string[] | undefined,
    }),
  };
}

/** Checks a disconnect body. */
export function parseNetworkDisconnect(body: Json): NetworkDisconnectRequest {
  return defined({ Container: containerOf(body), Force: optionalBool(body, "Force", "") });
}

/** The `/networks` route table. */
export function networkRoutes(backend: NetworksBackend): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();

  app.get("/", (c) => c.json(backend.list(filtersQuery(c))));

  app.post("/create", async (c) => {
    const request = parseNetworkCreate(await jsonBody<Json>(c));
    return c.json(await backend.create(request), 201);
  });

  app.post("/prune", async (c) => c.json(await backend.prune(filtersQuery(c))));

  app.get("/:id", (c) => {
    const id = c.req.param("id");
    // `verbose` only adds swarm service details, which a local engine has none of: accepted,
    // nothing to add.
    const network = backend.inspect(id);
    // Docker answers 404 when the network exists but not in the asked scope.
    const scope = c.req.query("scope");
    if (scope && scope !== network.Scope) throw notFound(`network ${id} not found`);
    return c.json(network);
  });

  app.delete("/:id", async (c) => {
    await backend.remove(c.req.param("id"));
    return c.body(null, 204);
  });

  app.post("/:id/connect", async (c) => {
    const request = parseNetworkConnect(await jsonBody<Json>(c));
    await backend.connect(c.req.param("id"), request);
    return c.body(null, 200);
  });

  app.post("/:id/disconnect", async (c) => {
    const request = parseNetworkDisconnect(await jsonBody<Json>(c));
    await backend.disconnect(c.req.param("id"), request);
    return c.body(null, 200);
  });

  return app;
}
