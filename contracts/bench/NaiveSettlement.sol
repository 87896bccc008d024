// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title The straightforward settlement contract, for the gas comparison only (bench/).
/// @dev One struct per epoch, one claimed flag per leaf hash, a token transfer per claim.
contract NaiveSettlement is AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    struct Epoch {
        bytes32 root;
        uint256 total;
        uint256 committedAt;
    }

    IERC20 public token;
    uint256 public lastEpochId;
    mapping(uint256 => Epoch) public epochs;
    mapping(address => uint256) public escrowOf;
    mapping(bytes32 => bool) public claimed;

    event Deposited(address indexed payer, uint256 amount);
    event EpochCommitted(uint256 indexed epochId, bytes32 root, uint256 total);
    event Claimed(uint256 indexed epochId, address indexed payer, address indexed provider, uint256 amount);

    constructor(IERC20 token_, address admin, address operator) {
        token = token_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, operator);
    }

    function deposit(uint256 amount) external nonReentrant {
        token.safeTransferFrom(msg.sender, address(this), amount);
        escrowOf[msg.sender] += amount;
        emit Deposited(msg.sender, amount);
    }

    function commitEpoch(uint64 epochId, bytes32 root, uint256 total) external onlyRole(OPERATOR_ROLE) {
        require(epochId > lastEpochId, "epoch not increasing");
        require(root != bytes32(0), "empty root");
        lastEpochId = epochId;
        epochs[epochId] = Epoch(root, total, block.timestamp);
        emit EpochCommitted(epochId, root, total);
    }

    function claim(uint64 epochId, address payer, address provider, uint256 amount, bytes32[] memory proof)
        external
        nonReentrant
    {
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(epochId, payer, provider, amount))));
        require(!claimed[leaf], "already claimed");
        require(MerkleProof.verify(proof, epochs[epochId].root, leaf), "invalid proof");
        require(escrowOf[payer] >= amount, "insufficient escrow");
        claimed[leaf] = true;
        escrowOf[payer] -= amount;
        token.safeTransfer(provider, amount);
        emit Claimed(epochId, payer, provider, amount);
    }
}
