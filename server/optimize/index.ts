/**
 * The optimizer's entry point: prune and/or quantize an ONNX model (bytes in, bytes out) and say what
 * was done. Pruning runs first so quantization scales fit the surviving weights. Both the input and the
 * output are loaded in onnxruntime-node (unless `verify: false`), so a model onnxruntime cannot load is
 * refused up front and a rewrite bug is never handed on as a "variant".
 *
 * Evaluation against the parent is separate ({@link evaluateVariant} + {@link checkQualityBudget}), as
 * is the governance report ({@link fairnessReport}, {@link permutationImportance}).
 *
 * @example
 * const { bytes, report } = await optimizeModel(fp32, { quantize: { form: 'qdq', perChannel: true } });
 * report.quantizedParamShare;  // 0.99
 * const ev = await evaluateVariant(bytes, fp32, dataset);
 * checkQualityBudget(ev);      // { accepted: true, reasons: [] }
 */
import { OptimizeError } from './errors.ts';
import { decodeModel, encodeModel, floatParamCount, opsetOf, setMetadata } from './graph.ts';
import type { CalibrationData } from './calibrate.ts';
import { pruneModel, type PruneReport } from './prune.ts';
import { pruneModelCalibrated } from './prune-calibrated.ts';
import { QDQ_SESSION_OPTIONS, quantizeModel, type QuantForm, type QuantizeReport } from './quantize.ts';
import { openSession } from './runtime.ts';
import { upgradeOpset, type OpsetUpgrade } from './opset-upgrade.ts';

export interface OptimizeOptions {
  quantize?: {
    form: QuantForm;
    perChannel: boolean;
    /** Integer form only: ConvInteger or weight-only QDQ for Conv (default 'qdq', see quantize.ts). */
    conv?: 'integer' | 'qdq';
    minElements?: number;
  };
  prune?: { sparsity: number; structured: boolean; channelMultiple?: number };
  /**
   * Samples to score and repair pruning with (see prune-calibrated.ts): without them pruning is by weight
   * magnitude alone. Use a split that is not the evaluation set.
   */
  calibration?: CalibrationData;
  /** Load input and output in onnxruntime-node. Default true. */
  verify?: boolean;
}

export interface OptimizeReport {
  /** 'fp32' when only pruned. */
  form: QuantForm | 'fp32';
  perChannel: boolean | null;
  /** Share of the float32 parameters (after any pruning) now stored as int8; 0 when not quantized. */
  quantizedParamShare: number;
  /** Achieved parameter sparsity of the pruned weights (0 when not pruned); see PruneReport.sparsity. */
  sparsity: number;
  structured: boolean | null;
  sizeBefore: number;
  sizeAfter: number;
  /** float32 parameters before; parameters of any type after. */
  paramsBefore: number;
  paramsAfter: number;
  opset: number;
  /** Set when the model was below the opset the rewrite needs and was lifted first (see opset-upgrade.ts). */
  opsetUpgrade?: OpsetUpgrade;
  /**
   * onnxruntime session options the variant should run with. For qdq variants they matter: without
   * `session.disable_quant_qdq` onnxruntime dequantizes the weights on every call (see quantize.ts).
   */
  sessionOptions: typeof QDQ_SESSION_OPTIONS;
  quantization?: QuantizeReport;
  pruning?: PruneReport;
}

export async function optimizeModel(bytes: Uint8Array, opts: OptimizeOptions): Promise<{ bytes: Uint8Array; report: OptimizeReport }> {
  if (!opts.quantize && !opts.prune) throw new OptimizeError('invalid_options', 'nothing to do: pass quantize and/or prune');
  const model = decodeModel(bytes);
  const verify = opts.verify !== false;
  if (verify) await loads(bytes, 'corrupt_model', 'onnxruntime cannot load the input model');
  const paramsBefore = floatParamCount(model);
  const pruning = opts.prune ? (opts.calibration ? await pruneModelCalibrated(model, opts.prune, opts.calibration) : pruneModel(model, opts.prune)) : undefined;
  // QuantizeLinear needs opset 10, DynamicQuantizeLinear 11, per-channel DequantizeLinear 13.
  const needed = opts.quantize ? (opts.quantize.form === 'integer' ? 11 : opts.quantize.perChannel ? 13 : 10) : 0;
  const opsetUpgrade = opts.quantize && opsetOf(model) < needed ? upgradeOpset(model, needed) : undefined;
  const quantization = opts.quantize ? quantizeModel(model, opts.quantize) : undefined;
  // What was done travels with the file, so a registry or a device can tell a variant from its parent.
  setMetadata(
    model,
    'flotilla.optimize',
    JSON.stringify({
      ...(opts.quantize ? { quantize: { form: opts.quantize.form, perChannel: opts.quantize.perChannel } } : {}),
      ...(opts.prune ? { prune: { sparsity: opts.prune.sparsity, structured: opts.prune.structured, method: pruning!.method } } : {}),
    }),
  );
  const out = encodeModel(model);
  if (verify) await loads(out, 'verification_failed', 'the optimized model does not load in onnxruntime');
  return {
    bytes: out,
    report: {
      form: opts.quantize?.form ?? 'fp32',
      perChannel: opts.quantize ? opts.quantize.perChannel : null,
      quantizedParamShare: quantization?.quantizedParamShare ?? 0,
      sparsity: pruning?.sparsity ?? 0,
      structured: opts.prune ? opts.prune.structured : null,
      sizeBefore: bytes.length,
      sizeAfter: out.length,
      paramsBefore,
      paramsAfter: countParams(model),
      opset: opsetOf(model),
      ...(opsetUpgrade && { opsetUpgrade }),
      sessionOptions: QDQ_SESSION_OPTIONS,
      quantization,
      pruning,
    },
  };
}

async function loads(bytes: Uint8Array, reason: 'corrupt_model' | 'verification_failed', message: string): Promise<void> {
  let session;
  try {
    session = await openSession(bytes);
  } catch (err) {
    throw new OptimizeError(reason, `${message}: ${(err as Error).message.split('\n')[0].slice(0, 300)}`);
  }
  await session.release();
}

function countParams(model: ReturnType<typeof decodeModel>): number {
  let n = 0;
  const walk = (g: NonNullable<typeof model.graph>) => {
    for (const t of g.initializer ?? []) n += (t.dims ?? []).reduce<number>((a, d) => a * Number(d), 1);
    for (const node of g.node ?? []) {
      for (const a of node.attribute ?? []) {
        if (node.opType === 'Constant' && a.t) n += (a.t.dims ?? []).reduce<number>((x, d) => x * Number(d), 1);
        if (a.g) walk(a.g);
        for (const sg of a.graphs ?? []) walk(sg);
      }
    }
  };
  walk(model.graph!);
  return n;
}

export { OptimizeError, type OptimizeRefusal } from './errors.ts';
export { quantize, quantizeModel, QDQ_SESSION_OPTIONS, type QuantForm, type QuantizeOptions, type QuantizeReport } from './quantize.ts';
export { prune, pruneModel, type PruneOptions, type PruneReport } from './prune.ts';
export { pruneModelCalibrated } from './prune-calibrated.ts';
export { upgradeOpset, type OpsetUpgrade } from './opset-upgrade.ts';
export type { CalibrationData } from './calibrate.ts';
export {
  evaluateModel,
  evaluateVariant,
  compareLatency,
  checkQualityBudget,
  DEFAULT_QUALITY_BUDGET,
  type EvalDataset,
  type EvalOptions,
  type ModelEvaluation,
  type ModelMetrics,
  type VariantEvaluation,
  type QualityBudget,
  type BudgetVerdict,
  type LatencyCandidate,
  type LatencyStats,
} from './evaluate.ts';
export { EVAL_SESSION_OPTIONS } from './runtime.ts';
export { fairnessReport, checkFairnessBudget, DEFAULT_FAIRNESS_BUDGET, type AttributeReport, type FairnessBudget } from './fairness.ts';
export { permutationImportance, type ImportanceOptions, type ImportanceReport } from './importance.ts';
export { governanceReport, type GovernanceOptions, type GovernanceReport } from './governance.ts';
