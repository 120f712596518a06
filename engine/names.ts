/**
 * Container names: validation with Docker's rule, and random `adjective_scientist` names for
 * containers created without `--name`.
 *
 * @module
 */
import { invalidArgument } from "./errors.ts";

const valid = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Strips a leading `/` and checks Docker's name rule. */
export function validateName(name: string): string {
  if (!valid.test(name)) {
    throw invalidArgument(
      `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
    );
  }
  return name.replace(/^\//, "");
}

const adjectives = [
  "admiring",
  "agitated",
  "amazing",
  "blissful",
  "bold",
  "brave",
  "busy",
  "charming",
  "clever",
  "cool",
  "dazzling",
  "determined",
  "eager",
  "ecstatic",
  "elegant",
  "epic",
  "festive",
  "focused",
  "friendly",
  "gallant",
  "gifted",
  "happy",
  "hopeful",
  "jolly",
  "keen",
  "kind",
  "laughing",
  "loving",
  "modest",
  "nice",
  "optimistic",
  "peaceful",
  "quirky",
  "relaxed",
  "serene",
  "sharp",
  "silly",
  "stoic",
  "sweet",
  "tender",
  "trusting",
  "vibrant",
  "vigilant",
  "wizardly",
  "zealous",
];

const scientists = [
  "albattani",
  "babbage",
  "bardeen",
  "bell",
  "boole",
  "curie",
  "darwin",
  "dijkstra",
  "einstein",
  "euler",
  "fermat",
  "feynman",
  "galileo",
  "gauss",
  "goldberg",
  "hopper",
  "hypatia",
  "kepler",
  "knuth",
  "lamport",
  "lovelace",
  "maxwell",
  "mccarthy",
  "meitner",
  "newton",
  "noether",
  "pascal",
  "pike",
  "ritchie",
  "shannon",
  "tesla",
  "thompson",
  "torvalds",
  "turing",
  "wozniak",
  "yonath",
];

/** A random `adjective_scientist` name; `retry > 0` appends a digit as Docker does. */
export function randomName(retry = 0): string {
  const pick = (list: string[]) => list[Math.floor(Math.random() * list.length)]!;
  const name = `${pick(adjectives)}_${pick(scientists)}`;
  return retry > 0 ? `${name}${Math.floor(Math.random() * 10)}` : name;
}

/** A new random 64-hex-character id. */
export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
