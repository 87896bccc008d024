// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title Kommons settlement: tenants' escrow, one Merkle root per epoch, providers' claims.
/// @notice Tenants (payers) deposit the settlement token into escrow. Once per epoch the
/// operator commits `(epochId, root, total)`: the root of an OpenZeppelin StandardMerkleTree
/// whose leaves are `(uint64 epochId, address payer, address provider, uint256 amount)`; the
/// root is stored, the total only logged (`EpochCommitted`).
/// Anyone may then claim a leaf with its proof: the payer's escrow is debited and the
/// provider's earnings credited, once per leaf. Providers take their earnings with
/// `withdrawEarnings` (one token transfer for any number of claims).
/// @dev Storage is laid out for gas (docs/settlement.md, "Gas"): a commit creates one slot
/// (the root); a claim writes the payer's escrow, the provider's earnings and one bit of a
/// per-(payer, provider) bitmap over epochs, and moves no tokens. A provider's earnings slot,
/// once created, never returns to zero (it holds earnings + 1), so claims after a withdrawal
/// do not pay for creating it again. A claim larger than the payer's escrow reverts with
/// `InsufficientEscrow` and stays unclaimed, so it can be retried after a top-up.
contract Settlement is AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice The role allowed to commit epochs (the hub's key).
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    /// @notice The settlement token (an ERC-20 without transfer fees).
    IERC20 public immutable token;

    /// @notice Seconds between a withdrawal request and the moment it can be paid.
    uint64 public immutable withdrawalDelay;

    struct Withdrawal {
        uint192 amount;
        uint64 availableAt;
    }

    /// @dev The highest committed epoch id (0: none yet).
    uint64 private _lastEpochId;
    mapping(uint64 epochId => bytes32) private _roots;
    mapping(address payer => uint256) private _escrow;
    mapping(address payer => Withdrawal) private _withdrawals;
    /// @dev 0: the provider was never credited; otherwise its unwithdrawn earnings + 1.
    mapping(address provider => uint256) private _earningsPlusOne;
    /// @dev Claimed flags: bit `epochId & 255` of word `epochId >> 8`, per (payer, provider).
    mapping(bytes32 pair => mapping(uint256 word => uint256 bits)) private _claimed;

    event Deposited(address indexed payer, address indexed from, uint256 amount);
    event WithdrawalRequested(address indexed payer, uint256 amount, uint64 availableAt);
    event Withdrawn(address indexed payer, uint256 amount);
    event EpochCommitted(uint64 indexed epochId, bytes32 root, uint256 total);
    event Claimed(
        uint64 indexed epochId, address indexed payer, address indexed provider, uint256 amount
    );
    event EarningsWithdrawn(address indexed provider, uint256 amount);

    error ZeroAddress();
    error ZeroAmount();
    error AmountTooLarge(uint256 amount);
    error EpochNotIncreasing(uint64 epochId, uint64 lastEpochId);
    error EmptyRoot();
    error UnknownEpoch(uint64 epochId);
    error AlreadyClaimed(uint64 epochId, address payer, address provider);
    error InvalidProof();
    error InsufficientEscrow(address payer, uint256 available, uint256 amount);
    error NoWithdrawalRequested(address payer);
    error WithdrawalNotReady(uint64 availableAt);
    error NothingToWithdraw(address account);

    /// @param token_ The settlement ERC-20.
    /// @param admin Holder of DEFAULT_ADMIN_ROLE (grants and revokes OPERATOR_ROLE).
    /// @param operator Holder of OPERATOR_ROLE (commits epochs).
    /// @param withdrawalDelay_ Seconds a payer waits between requestWithdrawal and withdraw.
    constructor(IERC20 token_, address admin, address operator, uint64 withdrawalDelay_) {
        if (address(token_) == address(0) || admin == address(0) || operator == address(0)) {
            revert ZeroAddress();
        }
        token = token_;
        withdrawalDelay = withdrawalDelay_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, operator);
    }

    // --- escrow -------------------------------------------------------------------------------

    /// @notice Put `amount` tokens of the caller into the caller's escrow (approve first).
    function deposit(uint256 amount) external {
        depositFor(msg.sender, amount);
    }

    /// @notice Put `amount` tokens of the caller into `payer`'s escrow (approve first).
    function depositFor(address payer, uint256 amount) public nonReentrant {
        if (payer == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        token.safeTransferFrom(msg.sender, address(this), amount);
        _escrow[payer] += amount;
        emit Deposited(payer, msg.sender, amount);
    }

    /// @notice Ask to take `amount` out of the caller's escrow after `withdrawalDelay` seconds.
    /// @dev Replaces an earlier request and restarts its delay. Claims landing in the meantime
    /// are paid first: `withdraw` pays at most what is left in escrow then.
    function requestWithdrawal(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint192).max) revert AmountTooLarge(amount);
        uint256 available = _escrow[msg.sender];
        if (amount > available) revert InsufficientEscrow(msg.sender, available, amount);
        uint64 availableAt = uint64(block.timestamp) + withdrawalDelay;
        _withdrawals[msg.sender] = Withdrawal(uint192(amount), availableAt);
        emit WithdrawalRequested(msg.sender, amount, availableAt);
    }

    /// @notice Pay the caller's pending withdrawal, capped by what is left in escrow.
    function withdraw() external nonReentrant {
        Withdrawal memory request = _withdrawals[msg.sender];
        if (request.availableAt == 0) revert NoWithdrawalRequested(msg.sender);
        if (block.timestamp < request.availableAt) revert WithdrawalNotReady(request.availableAt);
        delete _withdrawals[msg.sender];
        uint256 available = _escrow[msg.sender];
        uint256 amount = request.amount < available ? request.amount : available;
        _escrow[msg.sender] = available - amount;
        emit Withdrawn(msg.sender, amount);
        if (amount > 0) token.safeTransfer(msg.sender, amount);
    }

    // --- epochs and claims --------------------------------------------------------------------

    /// @notice Commit the Merkle root of an epoch's charges (operator only).
    /// @param epochId Must be greater than `lastEpochId()`: an epoch is committed at most once.
    /// @param root The StandardMerkleTree root of the epoch's leaves (non-zero).
    /// @param total The sum of the leaves' amounts, logged in `EpochCommitted` for audit and not
    /// stored (claims are bounded by their own leaves and by escrow).
    function commitEpoch(uint64 epochId, bytes32 root, uint256 total)
        external
        onlyRole(OPERATOR_ROLE)
    {
        uint64 last = _lastEpochId;
        if (epochId <= last) revert EpochNotIncreasing(epochId, last);
        if (root == bytes32(0)) revert EmptyRoot();
        _lastEpochId = epochId;
        _roots[epochId] = root;
        emit EpochCommitted(epochId, root, total);
    }

    /// @notice Charge `payer` `amount` for `provider` in `epochId`, proven by `proof`.
    /// @dev Anyone may call; the provider is credited whoever sends it. Reverts with
    /// `InsufficientEscrow` (and stays claimable) when the payer's escrow is short.
    function claim(
        uint64 epochId,
        address payer,
        address provider,
        uint256 amount,
        bytes32[] calldata proof
    ) external {
        bytes32 root = _roots[epochId];
        if (root == bytes32(0)) revert UnknownEpoch(epochId);
        bytes32 pair = _pairKey(payer, provider);
        uint256 word = epochId >> 8;
        uint256 bit = 1 << (epochId & 0xff);
        uint256 bits = _claimed[pair][word];
        if (bits & bit != 0) revert AlreadyClaimed(epochId, payer, provider);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(epochId, payer, provider, amount))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert InvalidProof();
        uint256 available = _escrow[payer];
        if (amount > available) revert InsufficientEscrow(payer, available, amount);
        _claimed[pair][word] = bits | bit;
        unchecked {
            _escrow[payer] = available - amount;
        }
        _credit(provider, amount);
        emit Claimed(epochId, payer, provider, amount);
    }

    /// @notice Pay the caller everything its claims have credited.
    /// @dev Leaves the earnings slot at 1 (zero earnings), not 0, so the next claim rewrites an
    /// existing slot instead of creating one.
    function withdrawEarnings() external nonReentrant {
        uint256 amount = _earningsOf(msg.sender);
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _earningsPlusOne[msg.sender] = 1;
        emit EarningsWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // --- views --------------------------------------------------------------------------------

    /// @notice The highest committed epoch id (0 when none is).
    function lastEpochId() external view returns (uint64) {
        return _lastEpochId;
    }

    /// @notice The root committed for `epochId` (zero when none is).
    function epochRoot(uint64 epochId) external view returns (bytes32) {
        return _roots[epochId];
    }

    /// @notice What `payer` has in escrow.
    function escrowOf(address payer) external view returns (uint256) {
        return _escrow[payer];
    }

    /// @notice `payer`'s pending withdrawal (zeros when none).
    function pendingWithdrawal(address payer)
        external
        view
        returns (uint256 amount, uint64 availableAt)
    {
        Withdrawal memory request = _withdrawals[payer];
        return (request.amount, request.availableAt);
    }

    /// @notice Whether the leaf of (`epochId`, `payer`, `provider`) has been claimed.
    function isClaimed(uint64 epochId, address payer, address provider)
        external
        view
        returns (bool)
    {
        return _claimed[_pairKey(payer, provider)][epochId >> 8] & (1 << (epochId & 0xff)) != 0;
    }

    /// @notice What `provider` has been credited by claims and not yet withdrawn.
    function earningsOf(address provider) external view returns (uint256) {
        return _earningsOf(provider);
    }

    /// @dev Add `amount` to `provider`'s earnings, creating its slot (at 1) on its first credit.
    function _credit(address provider, uint256 amount) private {
        uint256 stored = _earningsPlusOne[provider];
        _earningsPlusOne[provider] = (stored == 0 ? 1 : stored) + amount;
    }

    /// @dev `provider`'s unwithdrawn earnings (its slot minus the 1 that keeps it non-zero).
    function _earningsOf(address provider) private view returns (uint256) {
        uint256 stored = _earningsPlusOne[provider];
        return stored == 0 ? 0 : stored - 1;
    }

    function _pairKey(address payer, address provider) private pure returns (bytes32) {
        return keccak256(abi.encode(payer, provider));
    }
}
