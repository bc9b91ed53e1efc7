// Job: adjust SmtpServer's commands where Bridge answers differently: EHLO names Bridge and advertises
// ENHANCEDSTATUSCODES (Bridge's own replies carry enhanced codes).
// Failure: none.
using SmtpServer;
using SmtpServer.Protocol;

namespace Bridge.Intake;

internal sealed class BridgeCommandFactory : SmtpCommandFactory
{
    public override SmtpCommand CreateEhlo(string domainOrAddress) => new BridgeEhlo(domainOrAddress);

    private sealed class BridgeEhlo(string domainOrAddress) : EhloCommand(domainOrAddress)
    {
        protected override string GetGreeting(ISessionContext context) => context.ServerOptions.ServerName;

        protected override IEnumerable<string> GetExtensions(ISessionContext context) =>
            base.GetExtensions(context).Append("ENHANCEDSTATUSCODES");
    }
}
