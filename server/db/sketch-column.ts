// The schema's sketch column (`stats_windows.sketch`, `stats_rollups.sketch`): the binary form of
// protocol/sketch/sketch-blob.ts as a blob; rows stored as JSON text before it are still read.
import { customType } from 'drizzle-orm/sqlite-core';
import type { FeatureSetSketch } from '../../protocol/sketch/feature-set-sketch.ts';
import { encodeSketch, readStoredSketch } from '../../protocol/sketch/sketch-blob.ts';

/** A blob written by `encodeSketch`, read by `readStoredSketch`. */
export const sketchColumn = customType<{ data: FeatureSetSketch; driverData: Buffer }>({
  dataType: () => 'blob',
  toDriver: (s) => encodeSketch(s),
  fromDriver: (v) => readStoredSketch(v),
});
