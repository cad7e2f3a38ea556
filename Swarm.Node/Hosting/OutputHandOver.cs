using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>The client's side of <see cref="HandedOutputs"/>: one open output file handed to the node for a token.</summary>
public static class OutputHandOver
{
    /// <summary>
    /// The client's side: hands <paramref name="file"/> to the node listening at <paramref name="socketPath"/> and returns the
    /// token for the task request. Throws <see cref="IOException"/> in Swarm's words when the node cannot be reached or refuses.
    /// </summary>
    public static string HandOver(string socketPath, System.Runtime.InteropServices.SafeHandle file, TimeSpan timeout)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.SendTimeout = socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        }
        catch (SocketException e)
        {
            throw new IOException(e.SocketErrorCode is SocketError.AccessDenied
                ? $"cannot hand the output file to the node: this user may not use its output socket {socketPath}; run the get as the node's user"
                : $"cannot hand the output file to the node: its output socket {socketPath} does not answer ({e.SocketErrorCode}); is the node still running?", e);
        }
        try
        {
            try
            {
                UnixRights.Send(socket, [HandedOutputs.Version], file);
            }
            catch (IOException e)
            {
                throw new IOException($"handing the output file to the node failed ({e.Message}); run the get again", e);
            }
            var answer = new byte[HandedOutputs.MaxAnswer];
            int length = 0;
            while (length < answer.Length && Array.IndexOf(answer, (byte)'\n', 0, length) < 0)
            {
                int n = socket.Receive(answer, length, answer.Length - length, SocketFlags.None);
                if (n == 0) break;
                length += n;
            }
            string line = Encoding.UTF8.GetString(answer, 0, length).Split('\n')[0];
            if (line.StartsWith("ok ", StringComparison.Ordinal) && line.Length == 3 + HandedOutputs.TokenBytes * 2) return line[3..];
            if (line.StartsWith("error ", StringComparison.Ordinal)) throw new IOException($"the node refused the output file: {line[6..]}");
            throw new IOException(length == 0
                ? $"the node closed its output socket {socketPath} without an answer (it may be stopping, or busy with other clients); run the get again"
                : $"the node answered on its output socket {socketPath} with something this swarm does not understand; is it the same version?");
        }
        catch (SocketException e)
        {
            throw new IOException(e.SocketErrorCode == SocketError.TimedOut
                ? $"the node did not answer on its output socket {socketPath} within {timeout.TotalSeconds:0} s; run the get again"
                : $"handing the output file to the node failed ({e.SocketErrorCode}); run the get again", e);
        }
    }
}
