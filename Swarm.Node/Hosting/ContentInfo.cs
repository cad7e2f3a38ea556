using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Swarm.Core.Content;
using Swarm.Core.Exchange;

namespace Swarm.Node;

/// <summary>One store entry, as <c>swarm ls</c> shows it.</summary>
public sealed record ContentInfo(string Id, long Length, long Verified, bool Complete, bool Live, int Peers, long Uploaded, DateTime LastUsed, bool InUse, string[] Tasks)
{
    /// <summary>The OCI digest this content is (a blob or manifest the registry mirror or a preheat holds), if any.</summary>
    public string? Digest { get; init; }
}
