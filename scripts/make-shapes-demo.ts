/**
 * A small image folder and a quickly trained image model for trying the image side of the CLI in
 * seconds (`npm run demo:models` trains the real demo CNN; this is its architecture after one epoch):
 *
 *   <outDir>/images/          n labelled 32×32 shape PNGs + labels.csv (file,label), from the demo's generator
 *   <outDir>/image-demo.onnx  the demo CNN (firmware-bundles/image-demo takes it), trained one epoch on them
 *
 * Usage: npm run demo:shapes -- [outDir=demo] [--n 60] [--seed 1]
 * (relative paths are taken from the folder npm was started in)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEMO_CNN, exportCnnOnnx, trainCnn } from '../server/training/cnn.ts';
import { makeShapes, writeShapesFolder } from '../server/training/synthetic-shapes.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { n: { type: 'string', default: '60' }, seed: { type: 'string', default: '1' } } });
const n = Number(values.n);
const seed = Number(values.seed);
if (!Number.isInteger(n) || n < 3) throw new Error(`--n ${values.n}: a whole number of images, at least 3`);
const outDir = resolve(process.env.INIT_CWD ?? process.cwd(), positionals[0] ?? 'demo');
await mkdir(outDir, { recursive: true });
const shapes = await makeShapes({ n, seed });
await writeShapesFolder(join(outDir, 'images'), shapes);
const model = exportCnnOnnx(trainCnn(shapes, { seed, epochs: 1, ...DEMO_CNN }), { 'flotilla.train_images': String(n) });
await writeFile(join(outDir, 'image-demo.onnx'), model);
console.log(`wrote ${n} images to ${join(outDir, 'images')} and image-demo.onnx (${model.length} bytes, one epoch) to ${outDir}`);
