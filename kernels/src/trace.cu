// setDecodeTrace: the sink into every traced file's constant memory.
#include "trace.cuh"

namespace tessera::kernels {

const char* traceSiteName(std::uint32_t site)
{
    switch (static_cast<TraceSite>(site)) {
    case TraceSite::Gemv: return "gemv";
    case TraceSite::DecodeAttention: return "decode attention";
    case TraceSite::LatentAttention: return "latent attention";
    case TraceSite::Router: return "router";
    case TraceSite::CombineOne: return "moe combine (one token)";
    case TraceSite::Combine: return "moe combine";
    case TraceSite::RmsNorm: return "rms norm";
    case TraceSite::ArgmaxPartial: return "argmax (partial)";
    case TraceSite::ArgmaxFinal: return "argmax (final)";
    case TraceSite::Embed: return "embedding";
    case TraceSite::AttentionCombine: return "attention combine";
    }
    return "unknown";
}

Status setDecodeTrace(TraceRecord* records, unsigned* count, unsigned capacity)
{
    const TraceSink s{records, records ? count : nullptr, records ? capacity : 0u};
    for (auto set : {setTraceSinkGemv, setTraceSinkDecodeAttention, setTraceSinkMoe, setTraceSinkNorm, setTraceSinkSampling,
                     setTraceSinkElementwise, setTraceSinkAttention}) {
        const Status st = set(s);
        if (!st.ok())
            return st;
    }
    return {};
}

}  // namespace tessera::kernels
