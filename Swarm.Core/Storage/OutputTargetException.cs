namespace Swarm.Core.Storage;

/// <summary>
/// <c>-o</c> names something swarm must not write (a directory, a socket, a block device, a link it cannot follow): a
/// usage error, raised before any transfer.
/// </summary>
public sealed class OutputTargetException : ArgumentException
{
    public OutputTargetException(string message) : base(message) { }
    public OutputTargetException() { }
    public OutputTargetException(string message, Exception inner) : base(message, inner) { }
}
