// sppo's tensor library: libtorch tensors, autograd, optimizers and safetensors, for TypeScript.
//   import * as torch from 'sppo/torch';
export { Tensor, opId, hasOp, opSchema, liveTensors, isDType, callT, callTs, type Scalar, type TensorOrScalar, type Device } from './tensor.js';
export { type DType, ELEMENT_SIZE, isFloating, type TypedArray } from './dtype.js';
export { tidy, keep, scopeDepth } from './scope.js';
export * from './creation.js';
export * from './functional.js';
export { noGrad, enableGrad, isGradEnabled, backward, CheckpointTape } from './autograd.js';
export { Generator, manualSeed } from './random.js';
export { Optimizer, AdamW, RMSprop, SGD, clipGradNorm, liveOptimizers, type GroupOptions, type ParamGroup, type OptimizerKind } from './optim.js';
export { MasterWeights } from './master_weights.js';
export { LRScheduler, lrLambda, warmupStepsOf, type ScheduleKind, type ScheduleOptions } from './schedule.js';
export { SafetensorsFile, SafetensorsError, WeightFolder, loadSafetensors, saveSafetensors, saveWeights, type TensorEntry, SINGLE_FILE, INDEX_FILE } from './safetensors.js';
export { defaultDevice, setDefaultDevice } from './device.js';
export { CudaGraph } from './cuda_graph.js';
export { cuda, cudaIndex, setNumThreads, getNumThreads, libtorchVersion, buildFeatures } from './cuda.js';
export type { BuildFeatures } from './native.js';
export { profile, profileRows, traceEvents, formatProfile, type ProfileRow, type TraceEvent } from './profiler.js';
export { ProcessGroup, GradientSync, initProcessGroup, distEnv, distributedAvailable, DEFAULT_BUCKET_BYTES, DEFAULT_TIMEOUT_MS, type Backend, type ReduceOp, type DistEnv, type InitOptions } from './distributed.js';
