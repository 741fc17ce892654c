/** The model stage: mimic-clip/1 bundles, onnxruntime sessions and execution providers, lineage checks. */
export {
  loadBundle,
  readHeads,
  bundleHash,
  VISUAL_FILE,
  TEXTUAL_FILE,
  HEADS_FILE,
  MANIFEST_FILE,
  VISUAL_IO,
  TEXTUAL_IO,
  type Bundle,
  type BundleHeads,
  type LoadBundleOptions,
} from './bundle.js';
export {
  BUNDLE_FORMAT,
  validateManifest,
  type BundleManifest,
  type ImageSpec as BundleImageSpec,
  type TextSpec as BundleTextSpec,
  type ResizeMode,
  type Interpolation,
} from './manifest.js';
export {
  readSafetensors,
  parseSafetensors,
  floatTensor,
  encodeSafetensors,
  writeSafetensors,
  type SafetensorsFile,
  type SafetensorsTensor,
  type SafetensorsDtype,
  type SafetensorsInput,
} from './safetensors.js';
export { readOnnxSignature, type OnnxSignature, type OnnxValueInfo, type OnnxElemType } from './onnx-signature.js';
export {
  createSession,
  resolveDevice,
  parseDevice,
  cpuSessionOptions,
  type SessionOptions,
  type CreatedSession,
  type DeviceSpec,
  type DeviceChoice,
  type Provider,
} from './session.js';
export {
  probeCuda,
  probeCpu,
  ortNativeDir,
  ortVersion,
  unresolvedLibraries,
  CUDA_EP_LIBS,
  CUDA_EP_PACKAGE,
  CUDA_EP_HINT,
  type ProviderStatus,
} from './providers.js';
export { expandDevices, countGpus } from './devices.js';
export { openEncoders, encoderFiles, type Encoders, type EncoderOptions, type PixelFormat, type EncoderPrecision, type TextLength, TRIM_PROBE_RTOL } from './encoders.js';
export { pooledLength, cutIds } from './text-length.js';
export { addFloat16Variant, FP16_FILES, type Fp16VariantReport } from './fp16-variant.js';
export { verifyBundle, VERIFY_RTOL, type VerifyReport, type VerifyOptions } from './verify.js';
export {
  checkPair,
  assertCompatible,
  lineageVerdict,
  linearCka,
  featureAlignment,
  featureAgreement,
  LINEAGE_THRESHOLDS,
  type PairCheck,
  type LayerLineage,
  type LayerName,
  type FeatureAgreement,
  type LineageLevel,
  type LineageVerdict,
} from './lineage.js';
export { poolFeatureAgreement, type PoolFeatureOptions, type PoolFeatureResult } from './pool-features.js';
export { checkBundles, formatCheckReport, type CheckOptions, type CheckReport } from './check.js';
export { doctor, formatDoctor, packageVersion, type DoctorReport, type DoctorOptions } from './doctor.js';
