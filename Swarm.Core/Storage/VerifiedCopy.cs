using System.Buffers;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Swarm.Core.Storage;

/// <summary>
/// Streams a content's verified bytes into an open file: what an export does when it cannot link into the store (a FIFO, a
/// character device, a file another process opened and handed over). Every byte goes through
/// <see cref="StoredContent.ReadVerified"/>, one piece at a time, so each piece is read and hashed once on its way out.
/// </summary>
internal static class VerifiedCopy
{
    private const int EPIPE = 32;

    /// <summary>
    /// Writes the whole content into <paramref name="output"/>: at its offsets from 0 when <paramref name="seekable"/> (a
    /// failed attempt can be written over), else in order. <paramref name="shown"/> names the output in messages ("a FIFO
    /// /x/pipe"). A piece that fails its check before anything reached a non-seekable output throws
    /// <see cref="PieceRottenException"/> (fetch it, then try again); after, an <see cref="IOException"/>: what was sent
    /// cannot be taken back.
    /// </summary>
    public static void Into(StoredContent content, SafeFileHandle output, bool seekable, string shown, CancellationToken cancellationToken)
    {
        var layout = content.Layout;
        long length = layout.Length, offset = 0;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, layout.PieceSize));
        try
        {
            for (int piece = 0; piece < layout.PieceCount; piece++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var data = buffer.AsSpan(0, layout.PieceLength(piece));
                try
                {
                    content.ReadVerified(offset, data); // checked as it goes out: a rotten byte never reaches the output
                }
                catch (PieceRottenException rot) when (!seekable && offset > 0)
                {
                    throw new IOException($"piece {rot.Pieces[0]} of {content.Id} failed its hash check in the store after {offset:N0} of {length:N0} bytes had gone to {shown}, " +
                        "so what it got is cut short; the piece is fetched again from peers: run the same get again", rot);
                }
                int errno = 0;
                if (seekable)
                {
                    try
                    {
                        RandomAccess.Write(output, data, offset);
                    }
                    catch (IOException e)
                    {
                        throw Stopped(shown, offset, length, e.Message, e);
                    }
                }
                else
                {
                    errno = NativeFile.WriteAll(output, data);
                }
                if (errno != 0) throw Stopped(shown, offset, length, errno == EPIPE ? "its reader went away" : Marshal.GetPInvokeErrorMessage(errno), null);
                offset += data.Length;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static IOException Stopped(string shown, long offset, long length, string why, Exception? inner) =>
        new($"writing to {shown} stopped after {offset:N0} of {length:N0} bytes ({why}); the content stays in the store: run the same get again", inner);
}
