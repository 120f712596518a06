/**
 * The runtime.v1 services as `@grpc/proto-loader` (protobufjs) defines them, for the tests' and
 * the bench's CRI clients. The daemon's server encodes with pouch's own codec; a client on
 * protobufjs, as the kubelet's Go client is on another implementation, is what shows that the
 * two agree on the wire.
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type protobuf from "protobufjs";
import { descriptors } from "../cri/proto/descriptors.ts";
import { CONVERSION } from "../cri/types.ts";

let definitions: protoLoader.PackageDefinition | undefined;

/** The definition of the CRI service `name` (e.g. `runtime.v1.RuntimeService`), made once. */
export function criClientDefinition(name: string): grpc.ServiceDefinition {
  definitions ??= protoLoader.fromJSON(descriptors as protobuf.INamespace, CONVERSION);
  const definition = definitions[name];
  if (!definition) throw new Error(`no CRI service ${name}`);
  return definition as grpc.ServiceDefinition;
}
