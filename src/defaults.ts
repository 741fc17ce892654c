/**
 * Every default of the library, in one place (like sharp's constructor options): the CLI's flags, the config
 * presets in configs/ and the library's option objects all start from these.
 */
export const DEFAULTS = {
  wds: {
    /** Sample members tried in order for the image. */
    imageKeys: ['jpg', 'jpeg', 'png', 'webp'],
    captionKey: 'txt',
    metadataKey: 'json',
  },
  /** Reading shards (src/wds). */
  shards: {
    /** Samples read ahead of the consumer before reading pauses: bounds memory whatever the shard holds. */
    queueSamples: 32,
    /** Bytes per read from a local file: large reads keep per-chunk costs low. */
    readChunkBytes: 1 << 20,
    http: {
      /** Attempts after the first, for connection errors, 5xx/429 answers and bodies cut short (resumed by Range). */
      retries: 5,
      /** First wait between attempts, doubled each time. */
      retryDelayMs: 500,
      /** A connection idle this long while waiting for data counts as dropped. */
      timeoutMs: 60_000,
      maxRedirects: 5,
    },
  },
  image: {
    /**
     * Images with more pixels than this are refused before decoding (sharp's limitInputPixels). PIL refuses
     * images over twice its MAX_IMAGE_PIXELS (89,478,485) with DecompressionBombError; we refuse at the same
     * point so that no image a PIL pipeline accepts is lost, and nothing larger is ever decoded.
     */
    limitInputPixels: 178_956_970,
    /**
     * sharp's failOn: 'error' fails truncated and corrupt images (as PIL does) but accepts the recoverable
     * warnings (e.g. extraneous bytes before a JPEG marker) that PIL silently accepts too.
     */
    failOn: 'error',
    /** libvips threads per image: throughput comes from decoding several images at once, not from splitting one. */
    concurrency: 1,
    /**
     * JPEG DCT shrink-on-load is faster for large downscales but departs from PIL's full bicubic convolution;
     * off by default so that preprocessing matches PIL/torchvision as closely as libvips allows.
     */
    fastShrinkOnLoad: false,
    /** libvips shrinks (fast, ≤ a few LSB from PIL); PIL's bicubic, re-implemented bit-exactly, enlarges. */
    resampler: 'auto',
    /**
     * Who decodes plain 8-bit JPEGs for a caller that does not say: libvips, beside the caller's thread. The wasm
     * decoder (src/image/jpeg-wasm.ts: same pixels, 1.3–1.5× the images per CPU-second, on the calling thread) is
     * chosen where a thread is there for it: the scoring pipeline's prep threads (DEFAULTS.score.jpegDecoder).
     */
    jpegDecoder: 'libvips' as 'wasm' | 'libvips',
    /**
     * Larger JPEGs go to libvips: the wasm heap grows to the largest image and never shrinks (4 bytes a pixel),
     * and on large images the resize, not the decode, is the cost.
     */
    wasmJpegMaxPixels: 4_194_304,
    /** Container formats decoded; PIL cannot read SVG/PDF either, and rendering them is a needless risk. */
    formats: ['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif'],
  },
  /** Model bundles, onnxruntime sessions and execution providers (src/model). */
  model: {
    /** 'auto' uses the CUDA EP when it loads (and says so), else the CPU. */
    device: 'auto',
    /** onnxruntime intra-op threads; 0 = the cores this process may use (os.availableParallelism()). */
    intraOpThreads: 0,
    /** One: the encoders are sequential graphs, extra inter-op threads only compete for the cores. */
    interOpThreads: 1,
    /** Spinning threads burn the cores that decoding needs between runs (DESIGN §8). */
    allowSpinning: false,
    /** Samples per pool feature comparison in `mimic check`. */
    checkSamples: 256,
    /** Batch size when `mimic check` runs the encoders on pool samples. */
    checkBatchSize: 32,
  },
  gradGraph: {
    /** Opset of the per-sample-gradient graph; onnxruntime 1.29 runs 7–23, onnx 1.12's checker knows up to 17. */
    opset: 17,
    /**
     * Arithmetic inside the graph (features in and scores out stay float32). float64: the towers' terms cancel
     * in `both` for some samples, and float64 keeps those scores accurate at a cost that is small next to the
     * encoders (measured by scripts/bench-graph).
     */
    precision: 'float64' as 'float32' | 'float64',
    /** Its session: the graph is small (B×B Gram matrices), so two threads and no spinning on a shared CPU. */
    session: { intraOpNumThreads: 2, interOpNumThreads: 1, allowSpinning: false },
  },
  score: {
    batchSize: 256,
    /**
     * Samples prepared at once; 0 = twice the cores (sharp decodes on libuv's pool, one libvips thread each), or,
     * with prep threads, two messages of prepChunk per thread if that is more.
     */
    decodeConcurrency: 0,
    /**
     * Samples per message to a prep thread: each message costs both threads a fixed ~10–30 µs and a wake-up, and
     * at a GPU's rate one message per sample would cost the scoring thread most of its time.
     */
    prepChunk: 8,
    /**
     * Batches queued for the inference thread before reading and decoding wait: two keeps the model busy while
     * the next batch is assembled, and bounds memory to about (2 + 1) batches of pixels.
     */
    maxBatchesInFlight: 2,
    /**
     * How a shard's last, partial batch gets its B−1 negatives: the tail of the shard's previous batch (already
     * encoded, so no extra model work), used as negatives only. A shard with fewer than B samples has a smaller batch.
     */
    fillPolicy: 'previous-batch-tail',
    /**
     * Pixel transport to the image encoder. 'auto': uint8 on CUDA (every run copies its inputs from the host, and
     * uint8 is a quarter of float32's bytes) and on the CPU too (see cpuPixels).
     */
    pixels: 'auto' as 'auto' | 'uint8' | 'float32',
    /**
     * What 'auto' means on the CPU: uint8. Same score files byte for byte (tested); the scoring thread skips the
     * float32 conversion (its CPU per sample 0.71 ms against 0.80 ms, tiny model, 2-core EPYC, shared machine)
     * and the encoder's extra element-wise ops cost little next to a ViT.
     */
    cpuPixels: 'uint8' as 'uint8' | 'float32',
    /** Encoder build: fp32, or the bundles' fp16 variants (meant for GPUs; on the CPU they run through casts). */
    precision: 'fp32' as 'fp32' | 'fp16',
    /** Inference threads per device (several share a CPU's cores, or overlap copies and kernels on one GPU). */
    inferenceWorkers: 1,
    /**
     * Machines with at least this many cores decode and tokenize on worker threads (ScoreOptions.prepWorkers): on
     * one thread, sharp's synchronous part (~0.25 ms a call) and the tokenizer cap the loop near 1–2k samples/s
     * (measured), far below a GPU's rate; on fewer cores the extra threads only compete with libvips and onnxruntime.
     */
    prepWorkersMinCores: 8,
    /** Cores left to the scoring thread (reading, batching, writing) and the inference thread when sizing prep threads. */
    coresForOtherThreads: 2,
    /** See ScoreOptions.jpegDecoder: the wasm decoder where a thread is there for it. */
    jpegDecoder: 'auto' as 'auto' | 'wasm' | 'libvips',
  },
  /** `mimic filter` / `mimic stats` (src/filter). */
  filter: {
    /** How checkpoints combine: mean, median, min, max or vote. */
    aggregate: 'mean' as 'mean' | 'median' | 'min' | 'max' | 'vote',
    /** Softmax temperature of `vote` and `--normalize softmax` (the paper's τ). */
    tau: 1,
    /** Per-batch normalisation before pool-wide rules: none, rank or softmax. */
    normalize: 'none' as 'none' | 'rank' | 'softmax',
    /** Memory for each external sort (uid .npy, top-k ties), bytes; runs spill to the temp folder beyond it. */
    sortMemoryBytes: 256 * 1024 * 1024,
    /** Histogram bins per column in `mimic stats --report`. */
    reportBins: 60,
    /** Threads reading and evaluating score files; 0 = one per available core (os.availableParallelism()). */
    workers: 0,
    /** Rows per task handed to a thread (whole files; a task holds at least one). */
    taskRows: 65_536,
    /** Tasks per thread read ahead of the one the exports wait for (bounds memory with many threads). */
    tasksInFlight: 4,
    /**
     * Files read first to guess where each wanted percentile lies, so that the histogram pass also counts the
     * low bits there and the refine pass is usually skipped (a wrong guess only costs that pass); 0 = never.
     */
    sampleFiles: 64,
    /**
     * At most this many high buckets (of 65,536) around each column's guessed percentiles whose low bits the
     * histogram pass counts: 256 KiB per bucket per thread.
     */
    windowBuckets: 32,
  },
  /** `mimic reshard` (src/wds/reshard.ts): DataComp's resharder layout. */
  reshard: {
    /** Samples per output shard (DataComp's default). */
    shardSize: 10_000,
    /** Output shards are named {n:0<digits>d}.tar, as DataComp's `{:08d}.tar`. */
    digits: 8,
    /** `uid`: samples keyed `{uid}-{j}` as DataComp's resharder keys them; `source`: the source key kept. */
    keyFormat: 'uid' as 'uid' | 'source',
  },
  /** DataComp's basic and text-based filters (src/text/datacomp*.ts), with DataComp's own thresholds. */
  datacomp: {
    /** A caption needs more than this many words (Python `str.split()`). */
    wordsMoreThan: 2,
    /** ... and more than this many characters, counted in code points (Python `len`). */
    charsMoreThan: 5,
    /** The shorter side of the original image (json `original_width`/`original_height`) must reach this. */
    minShortSide: 200,
    /** Longer side / shorter side at most this. */
    maxAspectRatio: 3.0,
    /** fastText lid.176's top label that counts as English (no probability threshold, as in DataComp). */
    englishLabel: 'en',
    /** Distinct caption words whose WordNet lookup is remembered; the cache is emptied when full. */
    wordCacheSize: 200_000,
  },
  /** `mimic demo` (src/demo/run-demo.ts). */
  demo: {
    /** Output folder (relative to the working directory). */
    out: 'mimic-demo',
    /** The shipped bundles in the package's models/ folder: the reference and the proxy checkpoints, last = final. */
    reference: 'demo-reference',
    proxies: ['demo-proxy-50', 'demo-proxy-400'] as readonly string[],
    /** The demo models are tiny: the CPU scores the pool in seconds. */
    device: 'cpu',
  },
} as const;
