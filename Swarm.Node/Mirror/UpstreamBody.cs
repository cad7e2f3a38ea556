using Swarm.Core.Sources;

namespace Swarm.Node.Mirror;

/// <summary>Reads the (small) body of an upstream answer with a bound, so a registry cannot make the node buffer without end.</summary>
internal static class UpstreamBody
{
    /// <summary>
    /// The whole body, at most <paramref name="limit"/> bytes: larger is <see cref="RegistryFailure.Invalid"/>, a body
    /// broken off is <see cref="RegistryFailure.Unavailable"/>. <paramref name="what"/> names it in the message.
    /// </summary>
    public static async Task<byte[]> ReadAsync(HttpResponseMessage response, RegistryClient upstream, int limit, string what, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > limit)
            throw new RegistryException(RegistryFailure.Invalid, $"{upstream.Registry} sent {what} of {response.Content.Headers.ContentLength:N0} bytes; at most {limit:N0} are accepted");
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var buffer = new MemoryStream();
            var chunk = new byte[16384];
            int n;
            while ((n = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + n > limit) throw new RegistryException(RegistryFailure.Invalid, $"{upstream.Registry} sent {what} of over {limit:N0} bytes");
                buffer.Write(chunk, 0, n);
            }
            return buffer.ToArray();
        }
        catch (Exception e) when (e is HttpRequestException or IOException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new RegistryException(RegistryFailure.Unavailable, $"{upstream.Registry} broke off {what} before its end", e);
        }
    }
}
