/**
 * The bundle format in one import: definitions, the builder, canonical JSON, Ed25519 keys, key lists,
 * deployment manifests, file digests and smoke tests. Importing this pulls in onnxruntime-node
 * (through the builder); code that only verifies can import the single modules instead.
 *
 * @example
 * import { verifyKeyList, verifyManifest, verifyFile, runSmokeVectors } from '../firmware-bundles/index.ts';
 */
export * from './definition.ts';
export * from './canonical-json.ts';
export * from './keys.ts';
export * from './envelope.ts';
export * from './reasons.ts';
export * from './semver.ts';
export * from './key-list.ts';
export * from './manifest.ts';
export * from './file-digest.ts';
export * from './smoke.ts';
export * from './seeded-inputs.ts';
export * from './ort-runner.ts';
export * from './builder.ts';
export * from './load-definition.ts';
