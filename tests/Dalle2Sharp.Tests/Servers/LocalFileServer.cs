using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Dalle2Sharp.Tests.Servers;

/// <summary>
/// Serves a folder over http://127.0.0.1 until disposed: files as they are, folders as an index page
/// of links (as python -m http.server writes one), anything else 404. Counts the requests.
/// </summary>
public sealed class LocalFileServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;
    private int _requests;

    public LocalFileServer(string root)
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Url = $"http://127.0.0.1:{port}/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _loop = Task.Run(() => Serve(root));
    }

    /// <summary>The server's root, with a trailing slash.</summary>
    public string Url { get; }

    public int Requests => Volatile.Read(ref _requests);

    private void Serve(string root)
    {
        while (true)
        {
            HttpListenerContext ctx;
            try { ctx = _listener.GetContext(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            Interlocked.Increment(ref _requests);
            string path = Uri.UnescapeDataString(ctx.Request.Url!.AbsolutePath);
            string local = Path.Combine(root, path.TrimStart('/'));
            byte[] body;
            if (Directory.Exists(local))
            {
                // One absolute link, the others relative, and a link that is not a file: what index pages mix.
                var names = Directory.GetFiles(local).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
                var links = names.Select((n, i) => i == 0 ? $"<li><a href=\"{path.TrimEnd('/')}/{n}\">{n}</a></li>" : $"<li><a href='{n}'>{n}</a></li>");
                body = Encoding.UTF8.GetBytes($"<html><body><ul>{string.Concat(links)}<li><a href=\"?C=M;O=A\">sort</a></li></ul></body></html>");
            }
            else if (File.Exists(local)) body = File.ReadAllBytes(local);
            else
            {
                ctx.Response.StatusCode = 404;
                ctx.Response.Close();
                continue;
            }
            ctx.Response.ContentLength64 = body.Length;
            try { ctx.Response.OutputStream.Write(body); } catch (HttpListenerException) { }
            ctx.Response.Close();
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}
