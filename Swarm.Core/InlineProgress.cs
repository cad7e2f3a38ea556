namespace Swarm.Core;

/// <summary>
/// An <see cref="IProgress{T}"/> that reports on the reporting thread, in order. <see cref="Progress{T}"/> posts each
/// report to the thread pool, where two reports can run out of order: a counter fed from it can step back and then
/// count the same bytes twice. The callback must be cheap and thread-safe.
/// </summary>
public sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
