using System.CommandLine;
using ProxyGuard.Engine.Certificates;

namespace ProxyGuard.Commands;

internal static class CaCommands
{
    public static Command Create()
    {
        var initDir = new Option<string>("--dir") { Description = "CA directory.", DefaultValueFactory = _ => "certs-dev" }.NotEmpty();
        var force = new Option<bool>("--force") { Description = "Replace an existing CA." };
        var init = new Command("init", "Create a CA (key file mode 0600).") { initDir, force };
        init.SetAction(parse =>
        {
            try
            {
                using var ca = CertificateAuthority.Create(parse.GetValue(initDir)!, parse.GetValue(force));
                Console.WriteLine($"created {ca.CertificatePath} and {Path.Combine(ca.Directory, CertificateAuthority.KeyFileName)} (mode 0600)");
                return ExitCodes.Ok;
            }
            catch (CertificateAuthorityException ex)
            {
                Console.Error.WriteLine("proxyguard: " + RunCommand.OneLine(ex.Message));
                return ExitCodes.Failed;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // The file system's message alone ("Could not find file '/x'") does not say what was being done.
                Console.Error.WriteLine($"proxyguard: cannot create the CA in {Path.GetFullPath(parse.GetValue(initDir)!)}: {RunCommand.OneLine(ex.Message)}");
                return ExitCodes.Failed;
            }
        });

        var exportDir = new Option<string>("--dir") { Description = "CA directory.", DefaultValueFactory = _ => "certs-dev" }.NotEmpty();
        var output = new Option<string?>("--out") { Description = "Write the PEM here instead of stdout." }.NotEmpty();
        var export = new Command("export", "Write the CA certificate (PEM) for sandboxes to trust.") { exportDir, output };
        export.SetAction(parse =>
        {
            try
            {
                using var ca = CertificateAuthority.Load(parse.GetValue(exportDir)!);
                var pem = ca.ExportCertificatePem();
                var path = parse.GetValue(output);
                if (path is null)
                {
                    Console.Write(pem);
                }
                else
                {
                    File.WriteAllText(path, pem);
                }

                return ExitCodes.Ok;
            }
            catch (Exception ex) when (ex is CertificateAuthorityException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine("proxyguard: " + RunCommand.OneLine(ex.Message));
                return ExitCodes.Failed;
            }
        });

        return new Command("ca", "Manage the interception CA.") { init, export };
    }
}
