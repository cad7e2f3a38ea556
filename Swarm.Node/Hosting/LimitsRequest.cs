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

/// <summary>Rate limits to set at run time (<c>swarm limit</c>): e.g. 10MiB/s, 100mbit, 0 for none; null leaves one as it is.</summary>
public sealed record LimitsRequest(string? UploadRate, string? DownloadRate);
