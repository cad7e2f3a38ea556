using System.Threading.Channels;
using Swarm.Core.Content;
using Swarm.Core.Storage;

namespace Swarm.Core.Sources;

/// <summary>Takes one whole piece read from a source; the span is valid only during the call.</summary>
public delegate void PieceSink(int piece, ReadOnlySpan<byte> data);

/// <summary>
/// The one ingest loop: a source (an origin's body, a local file) is read piece by piece into pooled buffers while the
/// previous piece is handed to a sink (which hashes, signs and writes it), in two overlapping stages.
/// When <paramref name="cancellationToken"/> stops it, pieces already read whole are still handed to the sink, and the
/// bytes of the piece being read go to <c>stopped</c> (so an ingest that is stopped loses nothing it read); then it throws
/// <see cref="OperationCanceledException"/>.
/// </summary>
public static class PiecePipeline
{
    /// <summary>
    /// Reads pieces <paramref name="first"/>.. of <paramref name="layout"/> from <paramref name="body"/>, which is positioned
    /// at byte <c>PieceOffset(first) + head.Length</c>; <paramref name="head"/> is the start of piece <paramref name="first"/>
    /// read by an earlier run. A body that ends early raises <see cref="EndOfStreamException"/> naming <paramref name="shown"/>.
    /// </summary>
    public static async Task RunAsync(Stream body, PieceLayout layout, int first, ReadOnlyMemory<byte> head, PieceSink sink,
        string shown, PieceSink? stopped, CancellationToken cancellationToken)
    {
        if (first >= layout.PieceCount) return;
        if (head.Length >= layout.PieceLength(first)) throw new ArgumentException("the held start of a piece is the whole piece", nameof(head));
        var filled = Channel.CreateBounded<(int Piece, AlignedBuffer Buffer)>(2);
        // Cancelled when the sink fails (the reader must not outlive it); the caller's token stops only the reads.
        using var abort = new CancellationTokenSource();
        using var reads = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, abort.Token);
        var reader = Task.Run(() => ReadAsync(body, layout, first, head, shown, stopped, filled.Writer, reads.Token, abort.Token, cancellationToken), CancellationToken.None);
        try
        {
            // Drained without the caller's token: what was read whole is kept even when the ingest is being stopped.
            await foreach (var (piece, buffer) in filled.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                try
                {
                    sink(piece, buffer.Span[..layout.PieceLength(piece)]);
                }
                finally
                {
                    AlignedBuffer.Return(buffer);
                }
            }
        }
        finally
        {
            await abort.CancelAsync().ConfigureAwait(false);
            try { await reader.ConfigureAwait(false); } catch (Exception) { } // its error, if any, came through the channel
            while (filled.Reader.TryRead(out var left)) AlignedBuffer.Return(left.Buffer);
        }
    }

    private static async Task ReadAsync(Stream body, PieceLayout layout, int first, ReadOnlyMemory<byte> head, string shown, PieceSink? stopped,
        ChannelWriter<(int Piece, AlignedBuffer Buffer)> filled, CancellationToken reads, CancellationToken abort, CancellationToken caller)
    {
        try
        {
            for (int piece = first; piece < layout.PieceCount; piece++)
            {
                int length = layout.PieceLength(piece);
                var buffer = AlignedBuffer.Rent(layout.PieceSize);
                int got = 0;
                try
                {
                    if (piece == first && !head.IsEmpty)
                    {
                        head.Span.CopyTo(buffer.Span);
                        got = head.Length;
                    }
                    while (got < length)
                    {
                        int n = await body.ReadAsync(buffer.Memory[got..length], reads).ConfigureAwait(false);
                        if (n <= 0) throw new EndOfStreamException($"{shown} ended before its {layout.Length:N0} bytes (it shrank, or the connection broke); try again");
                        got += n;
                    }
                    await filled.WriteAsync((piece, buffer), abort).ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or IOException && caller.IsCancellationRequested && !abort.IsCancellationRequested)
                {
                    // Stopped (a cut read may show as an I/O error): the start of this piece is kept for the next run.
                    if (got > 0 && got < length) stopped?.Invoke(piece, buffer.Span[..got]);
                    AlignedBuffer.Return(buffer);
                    throw new OperationCanceledException(caller);
                }
                catch
                {
                    AlignedBuffer.Return(buffer);
                    throw;
                }
            }
            filled.Complete();
        }
        catch (Exception e)
        {
            filled.Complete(e);
        }
    }
}
