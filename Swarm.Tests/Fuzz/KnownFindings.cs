using MessagePack;
using Swarm.Core.Content;

namespace Swarm.Tests.Fuzz;

/// <summary>
/// Decoder bugs the fuzzers found that are not fixed yet. Each has an input, <c>Swarm.Tests/Fuzz/findings/&lt;id&gt;</c>,
/// and a test in <see cref="FuzzFindingTests"/> that fails until the decoder is fixed. The short in-process run and
/// afl-fuzz under bench/fuzz.sh (<c>SWARM_FUZZ_KNOWN=ignore</c>, its default) count a violation that matches one as known
/// rather than new, so the campaign goes on looking for others. Fixing a decoder: remove its entry here and move its input
/// into the target's corpus.
/// </summary>
public static class KnownFindings
{
    /// <summary>A bug: the targets that reach it, how to tell its violations, and (where running it costs too much) its inputs.</summary>
    /// <param name="Id">The finding's name, and its input's file name under findings/.</param>
    /// <param name="Targets">The targets that reach it; the first runs the finding's input.</param>
    /// <param name="Summary">What is wrong.</param>
    /// <param name="Matches">Whether a violation (with its input) is this bug.</param>
    /// <param name="Costly">Inputs not to run at all (the bug would allocate gigabytes); reported as this finding instead.</param>
    public sealed record Finding(string Id, string[] Targets, string Summary, Func<FuzzViolationException, byte[], bool> Matches, Func<byte[], bool>? Costly = null);

    private static bool Threw(FuzzViolationException v, Type type, string frame) =>
        v.Kind == "exception" && v.InnerException is { } e && type.IsInstanceOfType(e) && (e.StackTrace ?? "").Contains(frame, StringComparison.Ordinal);

    /// <summary>The piece count a live manifest's header declares, or -1 when the input is not one.</summary>
    public static long LivePieces(byte[] input)
    {
        try
        {
            var r = new MessagePackReader(input);
            if (r.ReadArrayHeader() != 6 || r.ReadInt32() != Manifest.LiveVersion) return -1;
            long length = r.ReadInt64();
            int pieceSize = r.ReadInt32();
            if (length < 0 || !PieceLayout.IsValidPieceSize(pieceSize)) return -1;
            return length / pieceSize + (length % pieceSize != 0 ? 1 : 0);
        }
        catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException or OverflowException)
        {
            return -1;
        }
    }

    public static IReadOnlyList<Finding> All { get; } =
    [
        new("ecdsa-unsupported-curve", ["signed-record", "manifest"],
            "EcdsaSignature.Verify lets PlatformNotSupportedException out for a SubjectPublicKeyInfo naming a curve OpenSSL does not know "
            + "(it catches CryptographicException only): SignedRecord.Verify and Manifest.VerifySignature throw instead of returning false",
            (v, _) => Threw(v, typeof(PlatformNotSupportedException), "EcdsaSignature.Verify")),
        new("live-manifest-allocation", ["manifest"],
            "Manifest.Decode of a live manifest allocates 97 bytes per declared piece (piece hashes, signatures, flags) before anything is "
            + "checked: an 80-byte manifest declaring 2^25 pieces allocates about 3 GiB",
            (v, input) => v.Kind is "allocation" && LivePieces(input) > 0,
            input => LivePieces(input) > 4096),
        new("token-answer-json-shape", ["registry-token"],
            "RegistryClient's token request lets InvalidOperationException out (not RegistryException) for an answer whose expires_in is not "
            + "a number (\"expires_in\":\"60\") or whose token string is not valid UTF-8",
            (v, _) => Threw(v, typeof(InvalidOperationException), "RegistryClient.TokenAsync")),
        new("oci-preheat-json-shape", ["oci-index"],
            "OciPreheat's IndexEntries and Blobs let InvalidOperationException out (not RegistryException) for a manifest of the wrong JSON "
            + "shape: a root or index entry that is not an object, a digest, os, architecture or variant that is not a string, or a string "
            + "that is not valid UTF-8",
            (v, _) => Threw(v, typeof(InvalidOperationException), "OciPreheat.")),
        new("detect-manifest-type", ["registry-manifest", "oci-index"],
            "Oci.DetectManifestType, which returns a media type for any body and catches JsonException only, lets FormatException out for "
            + "a schemaVersion that is not an Int32 (1.5, 1e10) and InvalidOperationException for a mediaType that is not valid UTF-8; "
            + "RegistryClient.GetManifestAsync calls it for a manifest served without a specific Content-Type, so that is not a RegistryException",
            (v, _) => Threw(v, typeof(Exception), "Oci.DetectManifestType")),
        new("config-json-lone-surrogate", ["swarm-json", "registries-json"],
            "NodeConfig.Load (swarm.json) and Registries.Load (registries.json) let InvalidOperationException out (not ConfigException) for "
            + "a property name or string value holding an escaped lone surrogate (\\ud800, \\udc00): JsonProperty.Name and "
            + "JsonElement.GetString throw it, and only JsonException and IOException are caught",
            (v, _) => Threw(v, typeof(InvalidOperationException), "NodeConfig.ReadFile") || Threw(v, typeof(InvalidOperationException), "Registries.Load")),
    ];

    /// <summary>A violation raised instead of running an input that would trigger a known, costly bug.</summary>
    public static FuzzViolationException? Guard(FuzzTarget target, byte[] input)
    {
        foreach (var f in All)
            if (f.Costly != null && f.Targets.Contains(target.Name) && f.Costly(input))
                return new FuzzViolationException(target.Name, "known", $"{f.Id}: {f.Summary} (not run)");
        return null;
    }

    /// <summary>The known finding a violation is, or null when it is new.</summary>
    public static Finding? Match(FuzzViolationException violation, byte[] input) =>
        All.FirstOrDefault(f => f.Targets.Contains(violation.Target)
            && (violation.Kind == "known" ? violation.Message.Contains(f.Id + ":", StringComparison.Ordinal) : f.Matches(violation, input)));
}
