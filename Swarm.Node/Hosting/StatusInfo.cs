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

/// <summary>What <c>swarm status</c> shows.</summary>
public sealed record StatusInfo(string NodeId, string Listen, string DataDirectory, int DhtContacts, int Connections, int Content, long StoreBytes,
    long Quota, long UploadRate, long DownloadRate, int TasksRunning, long BytesFromPeers, long BytesFromOrigin, long BytesUploaded, double UptimeSeconds);
