using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>The <c>--digest sha256:HEX</c> a user may give: parsed, and checked against the whole content before it is written out.</summary>
public static class ContentDigest
{
    /// <summary>The SHA-256 in a <c>sha256:HEX</c> digest; <see cref="FormatException"/> when it is not one.</summary>
    public static Hash256 Parse(string digest)
    {
        const string prefix = "sha256:";
        if (!digest.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || !Hash256.TryParseHex(digest.AsSpan(prefix.Length), out var expected))
            throw new FormatException($"--digest '{digest}' is not sha256:<64 hex digits>");
        return expected;
    }

    /// <summary>Checks the whole content against a <c>sha256:HEX</c> digest before it is exported.</summary>
    public static void Verify(StoredContent content, string digest)
    {
        var expected = Parse(digest);
        using var stream = new FileStream(content.DataPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 20, FileOptions.SequentialScan);
        var actual = new Hash256(SHA256.HashData(stream));
        if (actual != expected)
            throw new DigestMismatchException($"the content's SHA-256 is sha256:{actual.ToHex()}, not the expected {digest}; the output was not written");
    }
}
