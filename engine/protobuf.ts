/**
 * A small protobuf (proto3) codec driven by the JSON descriptors of `./proto/descriptors.ts`.
 *
 * The daemon used protobufjs for this, which alone cost it about 12 MB of memory: it compiles a
 * function per type and drags in its own long/float/utf8 helpers. This codec walks the
 * descriptors instead, which is plenty fast for containerd's small messages.
 *
 * Decoded messages look the way `@grpc/proto-loader` with `{ longs: Number, enums: String,
 * defaults: true }` shaped them: every field present, 64-bit integers as numbers, enums as their
 * names, unset messages as `null`, bytes as `Uint8Array`. Encoding takes the same shape and
 * accepts enum numbers, 64-bit integers as strings or bigints, and leaves out what is unset or
 * zero (proto3's implicit presence). A `bytes` value may also be a list of pieces, written as one
 * value: a chunk gathered from smaller reads need not be copied together first.
 *
 * @module
 */

/** A protobufjs-style JSON namespace: `nested` children, `fields` of a message, `values` of an enum. */
interface NamespaceJson {
  nested?: Record<string, NamespaceJson>;
  fields?: Record<string, FieldJson>;
  values?: Record<string, number>;
  methods?: Record<string, MethodJson>;
}

interface FieldJson {
  type: string;
  id: number;
  rule?: string;
  keyType?: string;
  options?: { packed?: boolean };
}

interface MethodJson {
  requestType: string;
  responseType: string;
  requestStream?: boolean;
  responseStream?: boolean;
}

/** A method of a service: its HTTP/2 path and the full names of its message types. */
export interface MethodInfo {
  path: string;
  requestType: string;
  responseType: string;
  requestStream: boolean;
  responseStream: boolean;
}

type Scalar =
  | "double"
  | "float"
  | "int32"
  | "int64"
  | "uint32"
  | "uint64"
  | "sint32"
  | "sint64"
  | "fixed32"
  | "fixed64"
  | "sfixed32"
  | "sfixed64"
  | "bool"
  | "string"
  | "bytes";

const SCALARS = new Set<string>([
  "double",
  "float",
  "int32",
  "int64",
  "uint32",
  "uint64",
  "sint32",
  "sint64",
  "fixed32",
  "fixed64",
  "sfixed32",
  "sfixed64",
  "bool",
  "string",
  "bytes",
]);

const enum Wire {
  Varint = 0,
  Fixed64 = 1,
  Delimited = 2,
  StartGroup = 3,
  EndGroup = 4,
  Fixed32 = 5,
}

/** How a field's values are written: a scalar, an enum (by its values) or a message. */
type ValueKind =
  | { kind: "scalar"; scalar: Scalar }
  | { kind: "enum"; type: EnumType }
  | { kind: "message"; type: MessageType };

interface Field {
  name: string;
  number: number;
  value: ValueKind;
  repeated: boolean;
  packed: boolean;
  /** For a map field: the key's scalar type (the value is `value`). */
  mapKey?: Scalar;
}

interface EnumType {
  byName: Map<string, number>;
  byNumber: Map<number, string>;
  defaultName: string | number;
}

interface MessageType {
  name: string;
  fields: Field[];
  byNumber: Map<number, Field>;
}

/** Options of {@link ProtoSchema.encode}. */
export interface EncodeOptions {
  /**
   * Bytes left free (zero) before the message, for a header the caller writes there (gRPC's
   * frame header), so that the message need not be copied behind it.
   */
  headroom?: number;
}

/** A compiled set of descriptors: encodes and decodes messages by their full name. */
export class ProtoSchema {
  #definitions = new Map<string, { json: NamespaceJson; scope: string }>();
  #messages = new Map<string, MessageType>();
  #enums = new Map<string, EnumType>();

  constructor(descriptors: Record<string, unknown>) {
    this.#index(descriptors as NamespaceJson, "");
  }

  /** Encodes `value` as the message `typeName` (a full name, e.g. `containerd.types.Mount`). */
  encode(
    typeName: string,
    value: Record<string, unknown>,
    options: EncodeOptions = {},
  ): Uint8Array<ArrayBuffer> {
    const writer = new Writer(options.headroom ?? 0);
    writeMessage(writer, this.#message(typeName), value);
    return writer.finish();
  }

  /** Decodes `bytes` as the message `typeName` into a plain object with every field set. */
  decode(typeName: string, bytes: Uint8Array): Record<string, unknown> {
    return readMessage(new Reader(bytes), this.#message(typeName), bytes.length);
  }

  /** Whether `typeName` names a message of the schema. */
  has(typeName: string): boolean {
    const definition = this.#definitions.get(typeName);
    return definition?.json.fields !== undefined;
  }

  /** The names of `service`'s methods (a full name, e.g. `runtime.v1.RuntimeService`). */
  methods(service: string): string[] {
    return Object.keys(this.#definitions.get(service)?.json.methods ?? {});
  }

  /** The method `method` of the service `service` (full name), or undefined. */
  method(service: string, method: string): MethodInfo | undefined {
    const definition = this.#definitions.get(service);
    const json = definition?.json.methods?.[method];
    if (!json) return undefined;
    return {
      path: `/${service}/${method}`,
      requestType: this.#resolve(json.requestType, service),
      responseType: this.#resolve(json.responseType, service),
      requestStream: json.requestStream ?? false,
      responseStream: json.responseStream ?? false,
    };
  }

  #index(json: NamespaceJson, name: string): void {
    if (name !== "") {
      this.#definitions.set(name, {
        json,
        scope: name.slice(0, Math.max(0, name.lastIndexOf("."))),
      });
    }
    for (const [child, nested] of Object.entries(json.nested ?? {})) {
      this.#index(nested, name === "" ? child : `${name}.${child}`);
    }
  }

  /** The full name `reference` means inside `scope`, by protobuf's rule: innermost scope first. */
  #resolve(reference: string, scope: string): string {
    if (reference.startsWith(".")) return reference.slice(1);
    let prefix = scope;
    while (true) {
      const candidate = prefix === "" ? reference : `${prefix}.${reference}`;
      if (this.#definitions.has(candidate)) return candidate;
      if (prefix === "") break;
      const dot = prefix.lastIndexOf(".");
      prefix = dot < 0 ? "" : prefix.slice(0, dot);
    }
    throw new Error(`protobuf: unknown type ${reference} in ${scope}`);
  }

  #message(name: string): MessageType {
    const cached = this.#messages.get(name);
    if (cached) return cached;
    const definition = this.#definitions.get(name);
    if (!definition?.json.fields) throw new Error(`protobuf: unknown message ${name}`);
    // Registered before its fields are compiled, so that recursive types resolve.
    const message: MessageType = { name, fields: [], byNumber: new Map() };
    this.#messages.set(name, message);
    for (const [fieldName, field] of Object.entries(definition.json.fields)) {
      const compiled = this.#field(fieldName, field, name);
      message.fields.push(compiled);
      message.byNumber.set(compiled.number, compiled);
    }
    return message;
  }

  #field(name: string, json: FieldJson, scope: string): Field {
    const value = this.#valueKind(json.type, scope);
    const repeated = json.rule === "repeated";
    const field: Field = {
      name,
      number: json.id,
      value,
      repeated,
      // proto3 packs repeated numbers unless told not to.
      packed: repeated && json.options?.packed !== false && isPackable(value),
    };
    if (json.keyType !== undefined) {
      if (!SCALARS.has(json.keyType)) throw new Error(`protobuf: bad map key ${json.keyType}`);
      field.mapKey = json.keyType as Scalar;
    }
    return field;
  }

  #valueKind(type: string, scope: string): ValueKind {
    if (SCALARS.has(type)) return { kind: "scalar", scalar: type as Scalar };
    const fullName = this.#resolve(type, scope);
    const definition = this.#definitions.get(fullName)!;
    if (definition.json.values) return { kind: "enum", type: this.#enum(fullName) };
    // Lazily: a message type is compiled when first written or read.
    const compile = () => this.#message(fullName);
    let message: MessageType | undefined;
    return {
      kind: "message",
      get type() {
        return message ??= compile();
      },
    };
  }

  #enum(name: string): EnumType {
    const cached = this.#enums.get(name);
    if (cached) return cached;
    const values = this.#definitions.get(name)!.json.values!;
    const byName = new Map(Object.entries(values));
    const byNumber = new Map<number, string>();
    for (const [valueName, number] of byName) {
      if (!byNumber.has(number)) byNumber.set(number, valueName);
    }
    const enumType: EnumType = { byName, byNumber, defaultName: byNumber.get(0) ?? 0 };
    this.#enums.set(name, enumType);
    return enumType;
  }
}

function isPackable(value: ValueKind): boolean {
  if (value.kind === "enum") return true;
  return value.kind === "scalar" && value.scalar !== "string" && value.scalar !== "bytes";
}

function wireTypeOf(value: ValueKind): Wire {
  if (value.kind !== "scalar") return value.kind === "enum" ? Wire.Varint : Wire.Delimited;
  switch (value.scalar) {
    case "double":
    case "fixed64":
    case "sfixed64":
      return Wire.Fixed64;
    case "float":
    case "fixed32":
    case "sfixed32":
      return Wire.Fixed32;
    case "string":
    case "bytes":
      return Wire.Delimited;
    default:
      return Wire.Varint;
  }
}

// --- encoding ---------------------------------------------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const TWO_32 = 0x1_0000_0000;

/** A growable byte buffer with protobuf's primitive writes. */
class Writer {
  #buffer = new Uint8Array(256);
  #view = new DataView(this.#buffer.buffer);
  length: number;

  constructor(headroom: number) {
    this.length = headroom;
  }

  finish(): Uint8Array<ArrayBuffer> {
    // A buffer at most a quarter unused is handed over as it is: copying a message that carries
    // a megabyte of content would cost more than the slack.
    if (this.length >= this.#buffer.length * 0.75) return this.#buffer.subarray(0, this.length);
    return this.#buffer.slice(0, this.length);
  }

  #reserve(count: number): void {
    if (this.length + count <= this.#buffer.length) return;
    // Doubling, or just enough for a large field (a chunk of content), which usually ends the
    // message.
    const size = Math.max(this.#buffer.length * 2, this.length + count);
    const grown = new Uint8Array(size);
    grown.set(this.#buffer.subarray(0, this.length));
    this.#buffer = grown;
    this.#view = new DataView(grown.buffer);
  }

  tag(number: number, wire: Wire): void {
    this.uint32(((number << 3) | wire) >>> 0);
  }

  uint32(value: number): void {
    this.#reserve(5);
    while (value > 0x7f) {
      this.#buffer[this.length++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    this.#buffer[this.length++] = value;
  }

  /** A 64-bit varint from its two 32-bit halves. */
  varint64(low: number, high: number): void {
    this.#reserve(10);
    while (high !== 0 || low > 0x7f) {
      this.#buffer[this.length++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    this.#buffer[this.length++] = low;
  }

  fixed32(value: number): void {
    this.#reserve(4);
    this.#view.setUint32(this.length, value >>> 0, true);
    this.length += 4;
  }

  fixed64(low: number, high: number): void {
    this.fixed32(low);
    this.fixed32(high);
  }

  float(value: number): void {
    this.#reserve(4);
    this.#view.setFloat32(this.length, value, true);
    this.length += 4;
  }

  double(value: number): void {
    this.#reserve(8);
    this.#view.setFloat64(this.length, value, true);
    this.length += 8;
  }

  bytes(value: Uint8Array | readonly Uint8Array[]): void {
    if (value instanceof Uint8Array) value = [value];
    let size = 0;
    for (const piece of value) size += piece.length;
    this.uint32(size);
    this.#reserve(size);
    for (const piece of value) {
      this.#buffer.set(piece, this.length);
      this.length += piece.length;
    }
  }

  /** Writes a length prefix after the fact: `write` fills the body, then it is moved right. */
  delimited(write: () => void): void {
    const start = this.length;
    write();
    const size = this.length - start;
    const prefix = varintSize(size);
    this.#reserve(prefix);
    this.#buffer.copyWithin(start + prefix, start, this.length);
    this.length = start;
    this.uint32(size);
    this.length = start + prefix + size;
  }
}

function varintSize(value: number): number {
  let size = 1;
  while (value > 0x7f) {
    value >>>= 7;
    size++;
  }
  return size;
}

/** Splits a 64-bit integer (number, numeric string or bigint) into two's-complement halves. */
function split64(value: unknown): [low: number, high: number] {
  const big = BigInt.asUintN(
    64,
    BigInt(typeof value === "number" ? Math.trunc(value) : value as string),
  );
  return [Number(big & 0xffff_ffffn), Number(big >> 32n)];
}

function writeMessage(writer: Writer, type: MessageType, value: Record<string, unknown>): void {
  for (const field of type.fields) {
    const fieldValue = value[field.name];
    if (fieldValue === undefined || fieldValue === null) continue;
    if (field.mapKey !== undefined) writeMap(writer, field, fieldValue as Record<string, unknown>);
    else if (field.repeated) writeRepeated(writer, field, fieldValue as unknown[]);
    else if (!isDefault(field.value, fieldValue)) {
      writer.tag(field.number, wireTypeOf(field.value));
      writeValue(writer, field.value, fieldValue);
    }
  }
}

function writeMap(writer: Writer, field: Field, map: Record<string, unknown>): void {
  const keyKind: ValueKind = { kind: "scalar", scalar: field.mapKey! };
  for (const [key, entry] of Object.entries(map)) {
    if (entry === undefined || entry === null) continue;
    writer.tag(field.number, Wire.Delimited);
    writer.delimited(() => {
      writer.tag(1, wireTypeOf(keyKind));
      writeValue(writer, keyKind, keyKind.scalar === "bool" ? key === "true" : key);
      writer.tag(2, wireTypeOf(field.value));
      writeValue(writer, field.value, entry);
    });
  }
}

function writeRepeated(writer: Writer, field: Field, values: unknown[]): void {
  if (values.length === 0) return;
  if (field.packed) {
    writer.tag(field.number, Wire.Delimited);
    writer.delimited(() => {
      for (const value of values) writeValue(writer, field.value, value);
    });
    return;
  }
  const wire = wireTypeOf(field.value);
  for (const value of values) {
    writer.tag(field.number, wire);
    writeValue(writer, field.value, value);
  }
}

function isDefault(kind: ValueKind, value: unknown): boolean {
  if (kind.kind === "message") return false;
  if (kind.kind === "enum") return enumNumber(kind.type, value) === 0;
  switch (kind.scalar) {
    case "string":
      return value === "";
    case "bytes":
      return (value as Uint8Array | Uint8Array[]).length === 0;
    case "bool":
      return value === false;
    default:
      return value === 0 || value === "0" || value === 0n;
  }
}

function enumNumber(type: EnumType, value: unknown): number {
  if (typeof value === "number") return value;
  const number = type.byName.get(String(value));
  if (number === undefined) throw new Error(`protobuf: unknown enum value ${String(value)}`);
  return number;
}

function writeValue(writer: Writer, kind: ValueKind, value: unknown): void {
  if (kind.kind === "message") {
    const type = kind.type;
    writer.delimited(() => writeMessage(writer, type, value as Record<string, unknown>));
    return;
  }
  if (kind.kind === "enum") {
    const number = enumNumber(kind.type, value);
    if (number < 0) writer.varint64(number >>> 0, 0xffff_ffff);
    else writer.uint32(number);
    return;
  }
  switch (kind.scalar) {
    case "string":
      writer.bytes(encoder.encode(String(value)));
      return;
    case "bytes":
      writer.bytes(value as Uint8Array | Uint8Array[]);
      return;
    case "bool":
      writer.uint32(value ? 1 : 0);
      return;
    case "double":
      writer.double(Number(value));
      return;
    case "float":
      writer.float(Number(value));
      return;
    case "uint32":
      writer.uint32(Number(value) >>> 0);
      return;
    case "int32": {
      const number = Number(value) | 0;
      if (number < 0) writer.varint64(number >>> 0, 0xffff_ffff);
      else writer.uint32(number);
      return;
    }
    case "sint32": {
      const number = Number(value) | 0;
      writer.uint32(((number << 1) ^ (number >> 31)) >>> 0);
      return;
    }
    case "fixed32":
    case "sfixed32":
      writer.fixed32(Number(value));
      return;
    case "int64":
    case "uint64":
      writer.varint64(...split64(value));
      return;
    case "sint64": {
      const big = BigInt(typeof value === "number" ? Math.trunc(value) : value as string);
      const zigzag = BigInt.asUintN(64, (big << 1n) ^ (big >> 63n));
      writer.varint64(Number(zigzag & 0xffff_ffffn), Number(zigzag >> 32n));
      return;
    }
    case "fixed64":
    case "sfixed64":
      writer.fixed64(...split64(value));
      return;
  }
}

// --- decoding ---------------------------------------------------------------------------------

/** Reads protobuf primitives from a byte array. */
class Reader {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  position = 0;

  constructor(bytes: Uint8Array) {
    // A plain view: a subclass such as Buffer has a `slice` that shares memory.
    this.bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  #need(count: number): void {
    if (this.position + count > this.bytes.length) throw new Error("protobuf: message truncated");
  }

  /** A varint as its low and high 32 bits. */
  varint(): [low: number, high: number] {
    let low = 0;
    let high = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      this.#need(1);
      const byte = this.bytes[this.position++]!;
      const bits = byte & 0x7f;
      if (shift < 28) low |= bits << shift;
      else if (shift === 28) {
        low |= bits << 28;
        high |= bits >>> 4;
      } else high |= bits << (shift - 32);
      if (byte < 0x80) return [low >>> 0, high >>> 0];
    }
    throw new Error("protobuf: varint too long");
  }

  uint32(): number {
    return this.varint()[0];
  }

  fixed32(): number {
    this.#need(4);
    const value = this.#view.getUint32(this.position, true);
    this.position += 4;
    return value;
  }

  fixed64(): [low: number, high: number] {
    const low = this.fixed32();
    return [low, this.fixed32()];
  }

  float(): number {
    this.#need(4);
    const value = this.#view.getFloat32(this.position, true);
    this.position += 4;
    return value;
  }

  double(): number {
    this.#need(8);
    const value = this.#view.getFloat64(this.position, true);
    this.position += 8;
    return value;
  }

  /** The end offset of a length-delimited field that starts here. */
  delimitedEnd(): number {
    const length = this.uint32();
    this.#need(length);
    return this.position + length;
  }

  skip(wire: Wire): void {
    switch (wire) {
      case Wire.Varint:
        this.varint();
        return;
      case Wire.Fixed64:
        this.#need(8);
        this.position += 8;
        return;
      case Wire.Delimited:
        this.position = this.delimitedEnd();
        return;
      case Wire.Fixed32:
        this.#need(4);
        this.position += 4;
        return;
      case Wire.StartGroup: {
        let tag = this.uint32();
        while ((tag & 7) !== Wire.EndGroup) {
          this.skip(tag & 7);
          tag = this.uint32();
        }
        return;
      }
      default:
        throw new Error(`protobuf: bad wire type ${wire}`);
    }
  }
}

function unsigned64(low: number, high: number): number {
  return high * TWO_32 + low;
}

function signed64(low: number, high: number): number {
  if (high & 0x8000_0000) {
    // Two's complement negative: -(~value + 1).
    const negLow = (~low + 1) >>> 0;
    const negHigh = (~high + (negLow === 0 ? 1 : 0)) >>> 0;
    return -(negHigh * TWO_32 + negLow);
  }
  return unsigned64(low, high);
}

function defaultValue(field: Field): unknown {
  if (field.mapKey !== undefined) return {};
  if (field.repeated) return [];
  const kind = field.value;
  if (kind.kind === "message") return null;
  if (kind.kind === "enum") return kind.type.defaultName;
  switch (kind.scalar) {
    case "string":
      return "";
    case "bytes":
      return new Uint8Array(0);
    case "bool":
      return false;
    default:
      return 0;
  }
}

function readMessage(reader: Reader, type: MessageType, end: number): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const field of type.fields) result[field.name] = defaultValue(field);
  while (reader.position < end) {
    const tag = reader.uint32();
    const wire = (tag & 7) as Wire;
    const field = type.byNumber.get(tag >>> 3);
    if (!field) {
      reader.skip(wire);
      continue;
    }
    if (field.mapKey !== undefined) {
      readMapEntry(reader, field, result[field.name] as Record<string, unknown>);
    } else if (field.repeated) {
      const values = result[field.name] as unknown[];
      if (wire === Wire.Delimited && isPackable(field.value)) {
        const packedEnd = reader.delimitedEnd();
        while (reader.position < packedEnd) values.push(readValue(reader, field.value));
      } else values.push(readValue(reader, field.value));
    } else if (wire === wireTypeOf(field.value)) {
      result[field.name] = readValue(reader, field.value);
    } else reader.skip(wire);
  }
  if (reader.position !== end) throw new Error("protobuf: field overruns its message");
  return result;
}

function readMapEntry(reader: Reader, field: Field, map: Record<string, unknown>): void {
  const end = reader.delimitedEnd();
  const keyKind: ValueKind = { kind: "scalar", scalar: field.mapKey! };
  let key: unknown = defaultValue({ ...field, value: keyKind, mapKey: undefined, repeated: false });
  let value: unknown = defaultValue({ ...field, mapKey: undefined, repeated: false });
  while (reader.position < end) {
    const tag = reader.uint32();
    const number = tag >>> 3;
    if (number === 1) key = readValue(reader, keyKind);
    else if (number === 2) value = readValue(reader, field.value);
    else reader.skip((tag & 7) as Wire);
  }
  if (field.value.kind === "message" && value === null) value = {};
  map[String(key)] = value;
}

function readValue(reader: Reader, kind: ValueKind): unknown {
  if (kind.kind === "message") {
    const end = reader.delimitedEnd();
    return readMessage(reader, kind.type, end);
  }
  if (kind.kind === "enum") {
    const number = reader.uint32() | 0;
    return kind.type.byNumber.get(number) ?? number;
  }
  switch (kind.scalar) {
    case "string": {
      const end = reader.delimitedEnd();
      const text = decoder.decode(reader.bytes.subarray(reader.position, end));
      reader.position = end;
      return text;
    }
    case "bytes": {
      const end = reader.delimitedEnd();
      const bytes = reader.bytes.slice(reader.position, end);
      reader.position = end;
      return bytes;
    }
    case "bool": {
      const [low, high] = reader.varint();
      return low !== 0 || high !== 0;
    }
    case "uint32":
      return reader.uint32();
    case "int32":
      return reader.uint32() | 0;
    case "sint32": {
      const value = reader.uint32();
      return (value >>> 1) ^ -(value & 1);
    }
    case "uint64":
      return unsigned64(...reader.varint());
    case "int64":
      return signed64(...reader.varint());
    case "sint64": {
      const [low, high] = reader.varint();
      const value = (BigInt(high) << 32n) | BigInt(low);
      return Number((value >> 1n) ^ -(value & 1n));
    }
    case "fixed32":
      return reader.fixed32();
    case "sfixed32":
      return reader.fixed32() | 0;
    case "fixed64":
      return unsigned64(...reader.fixed64());
    case "sfixed64":
      return signed64(...reader.fixed64());
    case "float":
      return reader.float();
    case "double":
      return reader.double();
  }
}
