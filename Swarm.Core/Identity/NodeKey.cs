using System.Security.Cryptography;
using Swarm.Core.Content;

namespace Swarm.Core.Identity;

/// <summary>A node's ECDSA P-256 key. NodeId = SHA-256 of the public key (SubjectPublicKeyInfo DER).</summary>
public sealed class NodeKey : ISigner, IDisposable
{
    public const string FileName = "node.key";
    private readonly ECDsa _ecdsa;

    private NodeKey(ECDsa ecdsa)
    {
        _ecdsa = ecdsa;
        PublicKey = ecdsa.ExportSubjectPublicKeyInfo();
        NodeId = Hash256.Of(PublicKey);
    }

    public byte[] PublicKey { get; }
    public Hash256 NodeId { get; }

    public static NodeKey Generate() => new(ECDsa.Create(ECCurve.NamedCurves.nistP256));

    /// <summary>Loads the key from the data directory, creating it (mode 0600) on first start.</summary>
    public static NodeKey LoadOrCreate(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        string path = Path.Combine(dataDirectory, FileName);
        if (File.Exists(path))
        {
            var ecdsa = ECDsa.Create();
            try
            {
                ecdsa.ImportPkcs8PrivateKey(File.ReadAllBytes(path), out _);
                if (ecdsa.KeySize != 256) throw new CryptographicException($"it is a {ecdsa.KeySize}-bit key, not ECDSA P-256");
            }
            catch (CryptographicException e)
            {
                ecdsa.Dispose();
                throw new InvalidDataException($"node key {path} is unreadable ({e.Message}); move it away to create a new identity", e);
            }
            return new NodeKey(ecdsa);
        }

        var key = Generate();
        // A name of its own: several processes may create the key of a new data directory at the same moment.
        string tmp = path + "." + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)) + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var fs = new FileStream(tmp, options))
        {
            fs.Write(key._ecdsa.ExportPkcs8PrivateKey());
            fs.Flush(true);
        }
        try
        {
            File.Move(tmp, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another process created it first: use theirs.
            File.Delete(tmp);
            key.Dispose();
            return LoadOrCreate(dataDirectory);
        }
        return key;
    }

    public byte[] Sign(ReadOnlySpan<byte> data) => _ecdsa.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature) =>
        EcdsaSignature.Verify(publicKey, data, signature);

    public void Dispose() => _ecdsa.Dispose();
}
