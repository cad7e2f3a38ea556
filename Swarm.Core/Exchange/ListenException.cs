namespace Swarm.Core.Exchange;

/// <summary>The node could not listen on the address it was given (in use, not this host's, not permitted).</summary>
public sealed class ListenException : IOException
{
    public ListenException(string message) : base(message) { }
    public ListenException() { }
    public ListenException(string message, Exception inner) : base(message, inner) { }
}
