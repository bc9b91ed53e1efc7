// Job: what SessionGate needs of an open session to choose one that gives its slot to a newcomer when all are
// taken: whether it waits slowly for its client, for how long, and a way to make it leave.
// Failure: none; Evict is false when the session was evicted already.
namespace Bridge.Intake;

internal interface ISessionSlot
{
    /// <summary>Waiting for its client (not for Bridge) longer than <paramref name="grace"/>, at a slow rate.</summary>
    bool IsSlow(TimeSpan grace);

    /// <summary>Time since the session's last reply.</summary>
    TimeSpan Waiting { get; }

    /// <summary>Gives up the slot: the session says why and closes; false when it was evicted already.</summary>
    bool Evict();
}
