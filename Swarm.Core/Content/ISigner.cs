namespace Swarm.Core.Content;

/// <summary>What signs manifests and piece hashes at ingest: a public key and signatures made with its private half.</summary>
public interface ISigner
{
    /// <summary>The public key (SubjectPublicKeyInfo DER) that verifies <see cref="Sign"/>'s signatures.</summary>
    byte[] PublicKey { get; }

    byte[] Sign(ReadOnlySpan<byte> data);
}
