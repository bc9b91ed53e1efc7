// Job: adjust SmtpServer's commands where Bridge answers differently. Corrects: the library's EHLO reply names
// the library, not the server, and does not advertise ENHANCEDSTATUSCODES although Bridge's replies carry them, nor
// DSN (RFC 3461), whose parameters CommandScreen and RecipientFilter take in its place.
// Failure: none.
using SmtpServer;
using SmtpServer.Protocol;

namespace Bridge.Intake.Adapters;

internal sealed class BridgeCommandFactory : SmtpCommandFactory
{
    public override SmtpCommand CreateEhlo(string domainOrAddress) => new BridgeEhlo(domainOrAddress);

    private sealed class BridgeEhlo(string domainOrAddress) : EhloCommand(domainOrAddress)
    {
        protected override string GetGreeting(ISessionContext context) => context.ServerOptions.ServerName;

        protected override IEnumerable<string> GetExtensions(ISessionContext context) =>
            base.GetExtensions(context).Append("ENHANCEDSTATUSCODES").Append("DSN");
    }
}
