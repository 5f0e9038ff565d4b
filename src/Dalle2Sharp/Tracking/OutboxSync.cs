using Dalle2Sharp.Tracking.HuggingFace;
using Dalle2Sharp.Tracking.Wandb;

namespace Dalle2Sharp.Tracking;

/// <summary>`tracker sync`: finds outbox folders and delivers them with the credentials of the current environment.</summary>
public static class OutboxSync
{
    public static IReadOnlyList<string> Find(string folder)
    {
        if (!Directory.Exists(folder)) throw new UserInputException($"{folder} does not exist");
        if (File.Exists(Path.Combine(folder, Outbox.HeaderName))) return [Path.GetFullPath(folder)];
        return Directory.GetFiles(folder, Outbox.HeaderName, SearchOption.AllDirectories).Select(f => Path.GetDirectoryName(Path.GetFullPath(f))!)
            .Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Delivers everything pending in <paramref name="folder"/>; false (with the reason printed) when the service refused or stayed
    /// down.</summary>
    public static bool Sync(string folder, Action<string> print)
    {
        using var outbox = new Outbox(folder, print);
        var header = outbox.Header ?? throw new UserInputException($"{folder}: no {Outbox.HeaderName}");
        if (outbox.Pending == 0)
        {
            print($"{folder}: nothing to send");
            return true;
        }
        IOutboxSender sender;
        switch (header["service"]?.GetValue<string>())
        {
            case "wandb":
            {
                var settings = WandbSettings.FromEnvironment();
                // The folder records the server it belongs to; WANDB_BASE_URL may point elsewhere only deliberately.
                if (Environment.GetEnvironmentVariable("WANDB_BASE_URL") is not { Length: > 0 })
                    settings = settings with { BaseUrl = header["base_url"]!.GetValue<string>() };
                if (settings.ApiKey is null) settings = settings with { ApiKey = WandbSettings.NetrcPassword(new Uri(settings.BaseUrl)) };
                settings.RequireKey();
                sender = new WandbSender(new WandbApi(settings with { Mode = "online" }), outbox);
                break;
            }
            case "huggingface":
            {
                string token = HubClient.FindToken(header["token_path"]?.GetValue<string>())
                    ?? throw new UserInputException("huggingface: no token: set HF_TOKEN or log in with `huggingface-cli login`");
                sender = new HubSender(new HubClient(header["repo"]!.GetValue<string>(), token,
                    endpoint: Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } ? null
                        : header["endpoint"]?.GetValue<string>()), outbox);
                break;
            }
            default:
                throw new UserInputException($"{folder}: unknown service {header["service"]}");
        }
        long pending = outbox.Pending;
        print($"{sender.Service}: sending {pending} entries from {folder} …");
        if (outbox.DeliverAll(sender))
        {
            print($"{sender.Service}: {pending} entries delivered");
            return true;
        }
        print($"error: {sender.Service}: {outbox.Pending} entries not delivered ({outbox.LastFailure}); they stay in {folder}");
        return false;
    }
}
