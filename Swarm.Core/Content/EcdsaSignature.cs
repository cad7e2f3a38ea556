using System.Security.Cryptography;

namespace Swarm.Core.Content;

/// <summary>Checks ECDSA P-256 / SHA-256 signatures (IEEE P1363, 64 bytes) against a SubjectPublicKeyInfo key.</summary>
public static class EcdsaSignature
{
    public const int Length = 64;

    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != Length) return false;
        try
        {
            using var ecdsa = ECDsa.Create();
            ecdsa.ImportSubjectPublicKeyInfo(publicKey, out int read);
            if (read != publicKey.Length || ecdsa.KeySize != 256) return false;
            return ecdsa.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        catch (Exception e) when (e is CryptographicException or PlatformNotSupportedException or NotSupportedException)
        {
            // A key on a curve the platform does not know (found by fuzzing) is as unusable as a malformed one.
            return false;
        }
    }
}
