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

    /// <summary>Open findings: none. The seven found so far are fixed (see <see cref="Fixed"/>).</summary>
    public static IReadOnlyList<Finding> All { get; } = [];

    /// <summary>
    /// Fixed findings, kept as regression inputs under findings/: each must keep its target's contract (FuzzFindingTests).
    /// </summary>
    public static IReadOnlyList<(string Id, string Target, string Summary)> Fixed { get; } =
    [
        ("ecdsa-unsupported-curve", "signed-record", "EcdsaSignature.Verify let PlatformNotSupportedException out for a key on a curve OpenSSL does not know"),
        ("live-manifest-allocation", "manifest", "Manifest.Decode allocated ~97 bytes per declared piece of a live manifest before any check (80 bytes -> 3 GiB); now at most 256 Ki pieces, checked first"),
        ("token-answer-json-shape", "registry-token", "a token answer of the wrong JSON shape let InvalidOperationException out of RegistryClient"),
        ("oci-preheat-json-shape", "oci-index", "a manifest of the wrong JSON shape let InvalidOperationException out of OciPreheat"),
        ("detect-manifest-type", "registry-manifest", "Oci.DetectManifestType let FormatException / InvalidOperationException out"),
        ("config-json-lone-surrogate", "swarm-json", "NodeConfig.Load and Registries.Load let InvalidOperationException out for an escaped lone surrogate in a name or string"),
        ("encrypted-write-empty-segment", "encrypted-record", "EncryptedStream.WriteAsync of a sequence whose first segment is empty (a pipe's buffer can be) sent records of 0 bytes, which its reader refuses, in an endless loop"),
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
