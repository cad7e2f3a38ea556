using System.Security.Cryptography;
using Swarm.Core.Content;

namespace Swarm.Node;

/// <summary>
/// The <c>trusted-publishers</c> setting: node ids whose pointers a node uses without asking the origin (and, when the
/// setting is given, the only ones it uses). Each item is a node id (64 hex digits, as <c>swarm id</c> prints it) or a
/// key file of a seed host: its public key (PEM <c>PUBLIC KEY</c> or DER, as <c>swarm id --public-key FILE</c> writes
/// it), or a copy of its <c>node.key</c>.
/// </summary>
public static class TrustedPublishers
{
    public static IReadOnlySet<Hash256> Parse(string value)
    {
        var ids = new HashSet<Hash256>();
        foreach (var item in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string text = item.StartsWith("swarm-node:", StringComparison.OrdinalIgnoreCase) ? item["swarm-node:".Length..] : item;
            if (text.Length == Hash256.Size * 2 && Hash256.TryParseHex(text, out var id))
            {
                ids.Add(id);
                continue;
            }
            if (!File.Exists(text))
                throw new FormatException($"'{item}' is neither a node id (64 hex digits, as 'swarm id' prints) nor an existing key file");
            ids.Add(FromKeyFile(text));
        }
        return ids;
    }

    /// <summary>The node id of a public key file (PEM or DER SubjectPublicKeyInfo), a node.key, or a file holding a node id.</summary>
    public static Hash256 FromKeyFile(string path)
    {
        // Bounded before reading: a device or a huge file named by mistake must not be read whole.
        byte[] bytes;
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Read))
        {
            bytes = new byte[64 * 1024 + 1];
            int n = 0, read;
            while (n < bytes.Length && (read = file.Read(bytes, n, bytes.Length - n)) > 0) n += read;
            if (n > 64 * 1024) throw new FormatException($"{path} is too large to be a key file");
            bytes = bytes[..n];
        }
        string text = System.Text.Encoding.ASCII.GetString(bytes).Trim();
        if (text.Length == Hash256.Size * 2 && Hash256.TryParseHex(text, out var written)) return written;
        using var ecdsa = ECDsa.Create();
        try
        {
            if (text.Contains("-----BEGIN", StringComparison.Ordinal)) ecdsa.ImportFromPem(text);
            else
            {
                try { ecdsa.ImportSubjectPublicKeyInfo(bytes, out _); }
                catch (Exception e) when (e is CryptographicException or PlatformNotSupportedException) { ecdsa.ImportPkcs8PrivateKey(bytes, out _); }
            }
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException or PlatformNotSupportedException)
        {
            throw new FormatException($"{path} is not a node key file (a PEM or DER public key, or a node.key)", e);
        }
        if (ecdsa.KeySize != 256) throw new FormatException($"{path} holds a {ecdsa.KeySize}-bit key; node keys are ECDSA P-256");
        return Hash256.Of(ecdsa.ExportSubjectPublicKeyInfo());
    }
}
