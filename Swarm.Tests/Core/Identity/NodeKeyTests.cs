using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Identity;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Identity;

/// <summary>The node identity (Swarm.Core.Identity), tested with the content signatures it produces.</summary>
public sealed class NodeKeyTests
{
    [Fact]
    public void LoadOrCreate_creates_a_private_key_file_and_reloads_the_same_identity()
    {
        using var dir = new TempDirectory();
        string data = dir.Combine("data", "nested");
        Hash256 id;
        byte[] publicKey;
        using (var key = NodeKey.LoadOrCreate(data))
        {
            id = key.NodeId;
            publicKey = key.PublicKey;
            Assert.Equal(Hash256.Of(key.PublicKey), key.NodeId);
        }
        string path = Path.Combine(data, NodeKey.FileName);
        Assert.True(File.Exists(path));
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal([path], Directory.GetFiles(data)); // no temp file left
        using var again = NodeKey.LoadOrCreate(data);
        Assert.Equal(id, again.NodeId);
        Assert.Equal(publicKey, again.PublicKey);
        // The reloaded key signs for the same identity.
        byte[] payload = "hello"u8.ToArray();
        Assert.True(NodeKey.Verify(publicKey, payload, again.Sign(payload)));
    }

    [Fact]
    public void Generated_keys_are_P256_and_distinct()
    {
        using var a = NodeKey.Generate();
        using var b = NodeKey.Generate();
        Assert.NotEqual(a.NodeId, b.NodeId);
        byte[] sig = a.Sign([1, 2, 3]);
        Assert.Equal(EcdsaSignature.Length, sig.Length);
        Assert.True(EcdsaSignature.Verify(a.PublicKey, [1, 2, 3], sig));
        Assert.False(EcdsaSignature.Verify(b.PublicKey, [1, 2, 3], sig));
        Assert.False(EcdsaSignature.Verify(a.PublicKey, [1, 2, 4], sig));
        Assert.False(EcdsaSignature.Verify([1, 2, 3], [1, 2, 3], sig));
        Assert.False(EcdsaSignature.Verify([], [1, 2, 3], sig));
        Assert.False(EcdsaSignature.Verify([.. a.PublicKey, 0], [1, 2, 3], sig)); // trailing bytes after the key
    }

    public static TheoryData<string> CorruptKeys => new() { "empty", "random bytes", "truncated", "text", "RSA key", "P-384 key" };

    [Theory]
    [MemberData(nameof(CorruptKeys))]
    public void Corrupt_key_file_gives_InvalidDataException_naming_the_path(string kind)
    {
        using var dir = new TempDirectory();
        string path = dir.Combine(NodeKey.FileName);
        byte[] good;
        using (var key = NodeKey.LoadOrCreate(dir.Path)) good = File.ReadAllBytes(path);
        byte[] bytes = kind switch
        {
            "empty" => [],
            "random bytes" => RandomNumberGenerator.GetBytes(138),
            "truncated" => good[..(good.Length / 2)],
            "text" => "-----BEGIN PRIVATE KEY-----\nnot really\n"u8.ToArray(),
            "RSA key" => RsaKey(),
            "P-384 key" => P384Key(),
            _ => throw new ArgumentException(kind),
        };
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => NodeKey.LoadOrCreate(dir.Path));
        Assert.Contains(path, e.Message);
        Assert.Equal(bytes, File.ReadAllBytes(path)); // never overwritten: the operator decides
    }

    private static byte[] RsaKey()
    {
        using var rsa = RSA.Create(2048);
        return rsa.ExportPkcs8PrivateKey();
    }

    private static byte[] P384Key()
    {
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        return ec.ExportPkcs8PrivateKey();
    }
}
