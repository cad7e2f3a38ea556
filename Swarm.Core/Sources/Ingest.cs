using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Storage;

namespace Swarm.Core.Sources;

/// <summary>
/// Ingest of bytes that are whole at hand (a local file, a body of known length): read through the one ingest loop
/// (<see cref="PiecePipeline"/>), each piece hashed and written to a staged entry, the manifest signed by
/// <c>signer</c>, and the complete entry installed in the store.
/// </summary>
public static class Ingest
{
    /// <summary>Ingests a local file; reports bytes processed through <paramref name="progress"/>.</summary>
    public static async Task<StoredContent> FileAsync(ContentStore store, string sourcePath, ISigner signer, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        using var source = new FileStream(sourcePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan | FileOptions.Asynchronous);
        return await StreamAsync(store, source, source.Length, sourcePath, signer, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Ingests <paramref name="length"/> bytes from <paramref name="source"/>; <paramref name="shown"/> names it in errors.</summary>
    public static async Task<StoredContent> StreamAsync(ContentStore store, Stream source, long length, string shown, ISigner signer, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var layout = PieceLayout.For(length);
        using var staging = store.BeginIngest(length, shown);
        byte[] hashes = new byte[layout.PieceCount * Hash256.Size];
        try
        {
            await PiecePipeline.RunAsync(source, layout, 0, default, (piece, data) =>
            {
                SHA256.HashData(data, hashes.AsSpan(piece * Hash256.Size, Hash256.Size));
                staging.WritePiece(piece, data);
                progress?.Report(layout.PieceOffset(piece) + data.Length);
            }, shown, null, cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException e)
        {
            throw new IOException(e.Message, e);
        }
        var manifest = new Manifest(length, layout.PieceSize, hashes, signer.PublicKey);
        return staging.Install(manifest, signer.Sign(manifest.SignedPayload()));
    }
}
