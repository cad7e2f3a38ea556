using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Sources;
using Swarm.Node;

namespace Swarm.Cli;

/// <summary>A task run in this process, shown on the progress line; what it says is scrubbed of secrets first.</summary>
internal sealed class ProgressObserver(ProgressLine progress, SecretRedactor redactor) : ITaskObserver
{
    public void OnContent(ContentId id) { }

    public void OnOrigin(long done, long total) => progress.Report(done, total);

    public void OnIngest(long done, long total) => progress.Report(done, total);

    public void OnSwarm(TransferProgress p) => progress.Report(p.VerifiedBytes, p.TotalBytes, p.Peers);

    public void Say(string line)
    {
        string scrubbed = redactor.Scrub(line);
        progress.WriteLine(scrubbed.StartsWith("swarm: ", StringComparison.Ordinal) ? scrubbed : "swarm: " + scrubbed);
    }
}
