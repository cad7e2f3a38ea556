using System.Diagnostics;
using System.Threading.Channels;
using Swarm.Core.Storage;

namespace Swarm.Core.Exchange.Download;

/// <summary>
/// Checks assembled pieces against the manifest's hash on worker tasks (one per core, up to 4) and commits those that
/// match to the store (verify in memory, then write: an unverified byte never reaches disk). Each outcome goes to
/// <c>onChecked</c>; a write that fails goes to <c>onWriteFailed</c>. The piece buffer stays the receiver's to return.
/// </summary>
internal sealed class PieceVerifier
{
    private readonly Channel<(StoredContent Content, PartialPiece Piece)> _queue =
        Channel.CreateUnbounded<(StoredContent, PartialPiece)>(new UnboundedChannelOptions { SingleWriter = false });
    private readonly Action<StoredContent, PartialPiece, PieceCheck> _onChecked;
    private readonly Action<StoredContent, PartialPiece, IOException> _onWriteFailed;
    private readonly CancellationToken _stop;
    private readonly Task[] _workers;

    public PieceVerifier(Action<StoredContent, PartialPiece, PieceCheck> onChecked, Action<StoredContent, PartialPiece, IOException> onWriteFailed, CancellationToken stop)
    {
        _onChecked = onChecked;
        _onWriteFailed = onWriteFailed;
        _stop = stop;
        int workers = Math.Clamp(Environment.ProcessorCount, 1, 4);
        _workers = Enumerable.Range(0, workers).Select(_ => Task.Run(WorkAsync)).ToArray();
    }

    public void Enqueue(StoredContent content, PartialPiece piece) => _queue.Writer.TryWrite((content, piece));

    /// <summary>Checks one piece and, when it matches, writes it (throws <see cref="IOException"/> when the write fails).</summary>
    public static PieceCheck Check(StoredContent content, PartialPiece piece)
    {
        if (!content.Manifest.HasPieceHash(piece.Index)) return PieceCheck.NoHash; // cannot happen with honest peers: a hash comes before its have
        long start = Stopwatch.GetTimestamp();
        bool matches = content.Manifest.VerifyPiece(piece.Index, piece.Data);
        Telemetry.PieceVerification.Record(Stopwatch.GetElapsedTime(start).TotalSeconds, new KeyValuePair<string, object?>("result", matches ? "verified" : "failed"));
        if (!matches) return PieceCheck.Failed;
        content.CommitVerifiedPiece(piece.Index, piece.Data);
        return PieceCheck.Verified;
    }

    private async Task WorkAsync()
    {
        var reader = _queue.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_stop).ConfigureAwait(false))
            {
                while (reader.TryRead(out var item))
                {
                    PieceCheck result;
                    try
                    {
                        result = Check(item.Content, item.Piece);
                    }
                    catch (IOException e)
                    {
                        _onWriteFailed(item.Content, item.Piece, e);
                        continue;
                    }
                    _onChecked(item.Content, item.Piece, result);
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>Stops taking pieces and waits for the workers.</summary>
    public async Task StopAsync()
    {
        _queue.Writer.TryComplete();
        try { await Task.WhenAll(_workers).ConfigureAwait(false); } catch (OperationCanceledException) { }
    }
}
